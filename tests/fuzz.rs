//! Fuzzing of everything that parses outside input: the record decoder (stored
//! bytes), storage keys, `Retry-After`, `OTEL_EXPORTER_OTLP_HEADERS`, the numeric
//! options and `OTEL_EXPORTER_OTLP_TIMEOUT`. Over a million generated inputs in
//! all (`FUZZ_CASES` per target, default 200,000): nothing panics, and what parses
//! keeps its promises (round trips, no line breaks in header values, checksums).
#![cfg(not(target_arch = "wasm32"))]

use export_retry::classify::parse_retry_after;
use export_retry::otlp_env::parse_headers;
use export_retry::policy::{Policy, NUMERIC_OPTIONS};
use export_retry::record::{checksum, RecordHeader};
use export_retry::spool::{key, parse_key, SpoolIndex};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000)
}

fn run<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    runner.run(&strategy, test).unwrap();
}

fn valid_record() -> impl Strategy<Value = Vec<u8>> {
    (any::<u64>(), prop::collection::vec(any::<u8>(), 0..64), "[a-z/+.-]{0,40}", "https?://[a-z.]{1,20}(:[0-9]{1,5})?/[a-z/]{0,20}")
        .prop_map(|(created_at_ms, payload, content_type, url)| {
            let content_encoding = if created_at_ms % 2 == 0 { "gzip".to_string() } else { String::new() };
            let header = RecordHeader { created_at_ms, payload_len: payload.len() as u64, payload_crc: checksum(&payload), content_type, content_encoding, url };
            let mut bytes = header.encode().unwrap();
            bytes.extend_from_slice(&payload);
            bytes
        })
}

#[test]
fn record_decoder_never_panics_and_never_trusts_damage() {
    // Valid records damaged by flips, truncation and insertion, and raw noise.
    let damaged = (valid_record(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4), any::<prop::sample::Index>(), any::<bool>())
        .prop_map(|(mut bytes, flips, cut, truncate)| {
            for (at, xor) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= xor;
            }
            if truncate {
                let len = cut.index(bytes.len() + 1);
                bytes.truncate(len);
            }
            bytes
        });
    let input = prop_oneof![3 => damaged, 1 => prop::collection::vec(any::<u8>(), 0..200)];
    run(input, |bytes| {
        if let Ok((header, at)) = RecordHeader::decode(&bytes) {
            // A header that decodes is only trusted with a matching payload.
            let payload = &bytes[at..];
            let verdict = header.verify_payload(payload.len() as u64, checksum(payload));
            if verdict.is_ok() {
                prop_assert_eq!(checksum(payload), header.payload_crc);
                prop_assert_eq!(payload.len() as u64, header.payload_len);
            }
        }
        Ok(())
    });
}

#[test]
fn storage_keys_parse_only_their_own_spelling() {
    let structured = (any::<u64>(), any::<u32>(), any::<u64>(), 0u32..5).prop_map(|(seq, instance, len, piece)| {
        key(export_retry::spool::RecordId { seq, instance }, len, piece)
    });
    let noisy = "r?[0-9a-fA-F.]{0,40}";
    run(prop_oneof![structured, noisy.prop_map(String::from), any::<String>()], |k| {
        if let Some(p) = parse_key(&k) {
            prop_assert_eq!(&key(p.id, p.payload_len, p.piece), &k);
        }
        let _ = SpoolIndex::recover([k.as_str()]);
        Ok(())
    });
}

#[test]
fn retry_after_never_panics() {
    let dates = "(Mon|Tue|Sun), [0-9]{1,2} (Jan|Feb|Nov) [0-9]{1,5} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT";
    run((prop_oneof![dates.prop_map(String::from), "[0-9 ]{0,30}".prop_map(String::from), any::<String>()], any::<u64>()), |(v, now)| {
        let _ = parse_retry_after(Some(&v), now);
        Ok(())
    });
}

#[test]
fn header_lists_never_panic_and_never_yield_line_breaks() {
    let list = "([a-zA-Z%0-9 =,_-]|%0[aAdD]|%[0-9a-fA-F]{2}){0,60}";
    run(prop_oneof![list.prop_map(String::from), any::<String>()], |raw| {
        if let Ok(headers) = parse_headers("OTEL_EXPORTER_OTLP_HEADERS", &raw) {
            for (name, value) in headers {
                prop_assert!(!name.is_empty());
                prop_assert!(!value.contains(['\r', '\n', '\0']));
            }
        }
        Ok(())
    });
}

#[test]
fn numeric_options_never_panic_and_keep_the_policy_valid_when_accepted() {
    let names = prop_oneof![prop::sample::select(NUMERIC_OPTIONS.to_vec()).prop_map(String::from), any::<String>()];
    let values = prop_oneof![any::<f64>(), (0u64..1 << 54).prop_map(|v| v as f64), Just(f64::NAN), Just(-0.0)];
    run((names, values, any::<String>()), |(name, value, env)| {
        let mut policy = Policy::default();
        if policy.set(&name, value).is_ok() {
            prop_assert!(value.is_finite() && value >= 0.0 && value.fract() == 0.0);
        }
        let mut policy = Policy::default();
        if policy.set_env_timeout(&env).is_ok() {
            prop_assert!(policy.timeout_ms > 0);
        }
        Ok(())
    });
}
