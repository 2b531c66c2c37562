//! Tests of the wasm-bindgen layer (`wasm-pack test --node`): the real engine
//! compiled to wasm, driven through a scripted JavaScript host whose clock,
//! sleeps, fetch and storage are under the test's control.
#![cfg(target_arch = "wasm32")]

use export_retry::record::RecordHeader;
use export_retry::Exporter;
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

#[wasm_bindgen(inline_js = r#"
export function handoffHost(script, answers) {
  // A request-isolate host: no storage; failed exports go to handoff(), which
  // answers from `answers` ("spooled", "dropped" or "reject" to fail).
  const made = scriptedHost(script, undefined);
  made.handoffs = [];
  made.recoveries = 0;
  for (const k of ["storageGet", "storagePut", "storageDelete", "storageList"]) {
    made.host[k] = () => { throw new Error(`no local storage: ${k}`); };
  }
  made.host.handoff = (body, { contentType, contentEncoding, url }) => {
    made.handoffs.push({ body: body.slice(), contentType, contentEncoding, url });
    const answer = answers.shift();
    return answer === "reject" ? Promise.reject(new Error("RPC failed")) : Promise.resolve(answer);
  };
  made.host.recovered = () => { made.recoveries += 1; return Promise.resolve(); };
  return made;
}

export function scriptedHost(script, maxValueBytes) {
  // script: what each fetch call does, in order: a status number, "throw"
  // (synchronous throw), "network" (rejects), "timeout" (rejects with a
  // TimeoutError), or [status, retryAfter].
  const store = new Map();
  const log = { warn: [], error: [] };
  const requests = [];
  const sleeps = [];
  const scheduled = [];
  let now = 1700000000000;
  const host = {
    fetch(url, init) {
      const step = script.length ? script.shift() : 200;
      requests.push({ url, init });
      if (step === "throw") throw new TypeError("fetch exploded");
      if (step === "network") return Promise.reject(new TypeError("fetch failed"));
      if (step === "timeout") return Promise.reject(new DOMException("timed out", "TimeoutError"));
      const [status, retryAfter] = Array.isArray(step) ? step : [step];
      return Promise.resolve(new Response(null, { status, headers: retryAfter ? { "retry-after": retryAfter } : {} }));
    },
    storageGet: (k) => store.get(k),
    storagePut: (k, v) => {
      if (host.failPuts) return Promise.reject(new Error("disk full (ENOSPC)"));
      store.set(k, v.slice());
    },
    storageDelete: (k) => { store.delete(k); },
    storageList: (p) => [...store.keys()].filter((k) => k.startsWith(p)).sort(),
    maxValueBytes,
    now: () => now,
    sleep: (ms) => { sleeps.push(ms); now += ms; return Promise.resolve(); },
    schedule: (at) => scheduled.push(at),
    cancel: () => scheduled.push(null),
    warn: (m) => log.warn.push(m),
    error: (m) => log.error.push(m),
    failPuts: false,
  };
  return { host, store, log, requests, sleeps, scheduled, advance: (ms) => { now += ms; } };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = scriptedHost)]
    fn scripted_host(script: Array, max_value_bytes: JsValue) -> JsValue;
    #[wasm_bindgen(js_name = handoffHost)]
    fn handoff_host(script: Array, answers: Array) -> JsValue;
}

const ENDPOINT: &str = "https://collector.example/v1/traces";
const SECRET: &str = "Bearer TOPSECRET";

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &key.into()).unwrap()
}

fn script(steps: &[JsValue]) -> Array {
    steps.iter().cloned().collect()
}

fn s(status: u16) -> JsValue {
    JsValue::from(status)
}

fn options(extra: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"endpoint".into(), &ENDPOINT.into()).unwrap();
    let headers = Object::new();
    Reflect::set(&headers, &"Authorization".into(), &SECRET.into()).unwrap();
    Reflect::set(&o, &"headers".into(), &headers).unwrap();
    for (k, v) in extra {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

struct Rig {
    fake: JsValue,
    exporter: Exporter,
}

impl Rig {
    async fn new(steps: &[JsValue], max_value_bytes: Option<f64>, extra: &[(&str, JsValue)]) -> Rig {
        let fake = scripted_host(script(steps), max_value_bytes.map_or(JsValue::UNDEFINED, JsValue::from));
        let exporter = Exporter::new(options(extra), get(&fake, "host").unchecked_into(), None).unwrap();
        JsFuture::from(exporter.open()).await.unwrap();
        Rig { fake, exporter }
    }

    async fn export(&self, body: &[u8]) -> JsValue {
        let p = self.exporter.export(Uint8Array::from(body).into(), JsValue::UNDEFINED).unwrap();
        JsFuture::from(p).await.unwrap()
    }

    fn list(&self, name: &str) -> Array {
        get(&self.fake, name).unchecked_into()
    }

    fn logged(&self, level: &str) -> Vec<String> {
        get(&get(&self.fake, "log"), level).unchecked_into::<Array>().iter().map(|v| v.as_string().unwrap()).collect()
    }

    fn stored(&self) -> Vec<(String, Vec<u8>)> {
        let store: js_sys::Map = get(&self.fake, "store").unchecked_into();
        let mut out = Vec::new();
        store.for_each(&mut |v, k| out.push((k.as_string().unwrap(), v.unchecked_into::<Uint8Array>().to_vec())));
        out.sort();
        out
    }

    fn advance(&self, ms: f64) {
        let advance: js_sys::Function = get(&self.fake, "advance").unchecked_into();
        advance.call1(&JsValue::NULL, &JsValue::from(ms)).unwrap();
    }

    fn stat(&self, name: &str) -> f64 {
        get(&self.exporter.stats(), name).as_f64().unwrap()
    }
}

fn outcome(result: &JsValue) -> String {
    get(result, "outcome").as_string().unwrap()
}

fn attempts(result: &JsValue) -> f64 {
    get(result, "attempts").as_f64().unwrap()
}

#[wasm_bindgen_test]
async fn spooled_record_decodes_and_holds_no_credential() {
    let rig = Rig::new(&[s(503), s(502)], None, &[]).await;
    let r = rig.export(b"span bytes").await;
    assert_eq!(outcome(&r), "spooled");
    assert_eq!(attempts(&r), 2.0);
    assert_eq!(rig.list("sleeps").to_vec(), vec![JsValue::from(1000)], "one immediate retry after 1 s");
    let stored = rig.stored();
    assert_eq!(stored.len(), 1);
    let (key, bytes) = &stored[0];
    assert!(key.starts_with('r') && key.ends_with(".a"), "key names the payload length: {key}");
    let (header, at) = RecordHeader::decode(bytes).unwrap();
    assert_eq!(header.url, ENDPOINT);
    assert_eq!(header.content_type, "application/x-protobuf");
    assert_eq!(&bytes[at..], b"span bytes");
    let text = String::from_utf8_lossy(bytes);
    assert!(!text.contains("TOPSECRET") && !text.to_lowercase().contains("authorization"));
    assert_eq!(rig.logged("warn"), vec!["Currently retrying 1 failed export(s) (10 bytes)".to_string()]);
    let scheduled = rig.list("scheduled");
    assert_eq!(scheduled.length(), 1, "the drain is scheduled");
}

#[wasm_bindgen_test]
async fn drain_sends_the_record_with_configured_headers_and_deletes_it() {
    let rig = Rig::new(&[s(503), s(503), s(200)], None, &[]).await;
    rig.export(b"abc").await;
    rig.advance(10_000.0);
    JsFuture::from(rig.exporter.wake()).await.unwrap();
    let requests = rig.list("requests");
    assert_eq!(requests.length(), 3);
    let last = requests.get(2);
    let headers = get(&get(&last, "init"), "headers");
    assert_eq!(get(&headers, "authorization").as_string().as_deref(), Some(SECRET));
    assert_eq!(get(&last, "url").as_string().as_deref(), Some(ENDPOINT));
    assert_eq!(get(&get(&last, "init"), "body").unchecked_into::<Uint8Array>().to_vec(), b"abc");
    assert!(rig.stored().is_empty());
    assert_eq!(rig.stat("delivered"), 1.0);
    assert_eq!(rig.stat("queued"), 0.0);
}

#[wasm_bindgen_test]
async fn a_synchronously_throwing_fetch_is_a_retryable_failure() {
    let rig = Rig::new(&["throw".into(), "network".into()], None, &[]).await;
    assert_eq!(outcome(&rig.export(b"x").await), "spooled");
}

#[wasm_bindgen_test]
async fn a_timed_out_attempt_is_retried_without_the_wait() {
    let rig = Rig::new(&["timeout".into(), s(200)], None, &[]).await;
    let r = rig.export(b"x").await;
    assert_eq!((outcome(&r).as_str(), attempts(&r)), ("delivered", 2.0));
    assert_eq!(rig.list("sleeps").length(), 0);
}

#[wasm_bindgen_test]
async fn retry_after_header_is_read_from_the_response() {
    let rig = Rig::new(&[Array::of2(&s(429), &"120".into()).into()], None, &[]).await;
    let r = rig.export(b"x").await;
    assert_eq!((outcome(&r).as_str(), attempts(&r)), ("spooled", 1.0));
    let next = rig.stat("nextAttemptAt");
    assert_eq!(next, 1_700_000_000_000.0 + 120_000.0);
}

#[wasm_bindgen_test]
async fn rejected_status_is_reported_and_logged() {
    let rig = Rig::new(&[s(401)], None, &[]).await;
    let r = rig.export(b"x").await;
    assert_eq!(outcome(&r), "rejected");
    assert_eq!(get(&r, "status").as_f64(), Some(401.0));
    let errors = rig.logged("error");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("401"));
    assert!(rig.stored().is_empty());
}

#[wasm_bindgen_test]
async fn a_failed_spool_write_drops_and_logs() {
    let rig = Rig::new(&[s(503), s(503)], None, &[]).await;
    Reflect::set(&get(&rig.fake, "host"), &"failPuts".into(), &JsValue::TRUE).unwrap();
    let r = rig.export(b"x").await;
    assert_eq!(outcome(&r), "dropped");
    assert!(rig.logged("error").iter().any(|m| m.contains("ENOSPC")));
    assert_eq!(rig.stat("dropped"), 1.0);
    assert_eq!(rig.stat("queuedBytes"), 0.0);
}

#[wasm_bindgen_test]
async fn large_records_are_chunked_under_the_value_limit_and_reassembled() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let rig = Rig::new(&[s(503), s(503), s(200)], Some(16_384.0), &[]).await;
    assert_eq!(outcome(&rig.export(&payload).await), "spooled");
    let stored = rig.stored();
    assert!(stored.len() >= 7, "{} pieces", stored.len());
    assert!(stored.iter().all(|(_, v)| v.len() <= 16_384));
    rig.advance(10_000.0);
    JsFuture::from(rig.exporter.wake()).await.unwrap();
    let last = rig.list("requests").get(2);
    assert_eq!(get(&get(&last, "init"), "body").unchecked_into::<Uint8Array>().to_vec(), payload);
    assert!(rig.stored().is_empty());
}

#[wasm_bindgen_test]
fn bad_options_name_the_option() {
    let fake = scripted_host(Array::new(), JsValue::UNDEFINED);
    let host = || get(&fake, "host").unchecked_into();
    for (key, value, expect) in [
        ("endpoint", JsValue::from("not a url"), "endpoint"),
        ("endpoint", JsValue::from("ftp://example.com/x"), "endpoint"),
        ("timeoutMs", JsValue::from(-1), "timeoutMs"),
        ("timeoutMs", JsValue::from("5"), "timeoutMs"),
        ("maxSpoolBytes", JsValue::from(1.5), "maxSpoolBytes"),
        ("timeoutMS", JsValue::from(5), "timeoutMS"),
    ] {
        let err = Exporter::new(options(&[(key, value)]), host(), None).err().expect(key);
        let message = get(&err, "message").as_string().unwrap();
        assert!(message.contains(expect), "{message}");
    }
    let err = Exporter::new(options(&[]), host(), Some("ten".into())).err().unwrap();
    assert!(get(&err, "message").as_string().unwrap().contains("OTEL_EXPORTER_OTLP_TIMEOUT"));
    let ok = Exporter::new(options(&[]), host(), None).unwrap();
    let err = ok.export("text".into(), JsValue::UNDEFINED).err().unwrap();
    assert!(err.is_instance_of::<js_sys::TypeError>());
    assert!(get(&err, "message").as_string().unwrap().contains("body"));
}

fn handoff_rig(steps: &[JsValue], answers: &[&str]) -> Rig {
    let fake = handoff_host(script(steps), answers.iter().map(|a| JsValue::from(*a)).collect());
    let exporter = Exporter::new(options(&[]), get(&fake, "host").unchecked_into(), None).unwrap();
    Rig { fake, exporter }
}

#[wasm_bindgen_test]
async fn a_request_isolate_hands_failed_exports_to_the_remote_spool() {
    let rig = handoff_rig(&[s(503), s(503)], &["spooled"]);
    let r = rig.export(b"payload").await;
    assert_eq!((outcome(&r).as_str(), attempts(&r)), ("spooled", 2.0));
    let handoffs = rig.list("handoffs");
    assert_eq!(handoffs.length(), 1);
    let h = handoffs.get(0);
    assert_eq!(get(&h, "url").as_string().as_deref(), Some(ENDPOINT));
    assert_eq!(get(&h, "contentType").as_string().as_deref(), Some("application/x-protobuf"));
    assert_eq!(get(&h, "body").unchecked_into::<Uint8Array>().to_vec(), b"payload");
    assert_eq!(rig.stat("spooled"), 1.0);
    assert_eq!(rig.stat("queued"), 0.0, "nothing is stored locally");
}

#[wasm_bindgen_test]
async fn a_failed_or_refused_hand_off_drops_and_says_so() {
    let rig = handoff_rig(&[s(503), s(503), s(503)], &["reject", "dropped"]);
    assert_eq!(outcome(&rig.export(b"a").await), "dropped");
    assert!(rig.logged("error").iter().any(|m| m.contains("RPC failed")), "{:?}", rig.logged("error"));
    // The second export is a probe (the backend was failing): one attempt.
    let r = rig.export(b"b").await;
    assert_eq!((outcome(&r).as_str(), attempts(&r)), ("dropped", 1.0));
    assert_eq!(rig.stat("dropped"), 2.0);
}

#[wasm_bindgen_test]
async fn a_delivered_probe_tells_the_remote_spool_once() {
    let rig = handoff_rig(&[s(503), s(503), s(200), s(200)], &["spooled"]);
    rig.export(b"a").await;
    let r = rig.export(b"b").await;
    assert_eq!((outcome(&r).as_str(), attempts(&r)), ("delivered", 1.0));
    assert_eq!(get(&rig.fake, "recoveries").as_f64(), Some(1.0));
    rig.export(b"c").await;
    assert_eq!(get(&rig.fake, "recoveries").as_f64(), Some(1.0), "a healthy export is no recovery");
}

#[wasm_bindgen_test]
async fn spool_stores_a_payload_from_elsewhere_and_backs_off_before_draining_it() {
    let rig = Rig::new(&[], None, &[]).await;
    let opts = Object::new();
    Reflect::set(&opts, &"contentType".into(), &"application/json".into()).unwrap();
    Reflect::set(&opts, &"url".into(), &"https://collector.example/v1/logs".into()).unwrap();
    let r = JsFuture::from(rig.exporter.spool(Uint8Array::from(&b"{}"[..]).into(), opts.into()).unwrap()).await.unwrap();
    assert_eq!(outcome(&r), "spooled");
    let stored = rig.stored();
    let (header, _) = RecordHeader::decode(&stored[0].1).unwrap();
    assert_eq!(header.url, "https://collector.example/v1/logs");
    assert_eq!(header.content_type, "application/json");
    assert!(rig.stat("nextAttemptAt") > 1_700_000_000_000.0, "the drain waits: the payload just failed elsewhere");
    assert_eq!(rig.list("requests").length(), 0);

    let bad = Object::new();
    Reflect::set(&bad, &"url".into(), &"file:///etc/passwd".into()).unwrap();
    let err = rig.exporter.spool(Uint8Array::from(&b"x"[..]).into(), bad.into()).err().unwrap();
    assert!(get(&err, "message").as_string().unwrap().contains("url"));
}

#[wasm_bindgen_test]
async fn backend_recovered_makes_the_drain_due_now() {
    let rig = Rig::new(&[s(503), s(503)], None, &[]).await;
    rig.export(b"x").await;
    let before = rig.list("scheduled").length();
    rig.exporter.backend_recovered();
    let scheduled = rig.list("scheduled");
    assert_eq!(scheduled.length(), before + 1);
    assert_eq!(scheduled.get(before).as_f64(), Some(1_700_000_000_000.0 + 1000.0), "wake now (the clock moved 1 s in the retry)");
}

#[wasm_bindgen_test]
async fn content_encoding_is_sent_stored_and_sent_again_from_the_spool() {
    let rig = Rig::new(&[s(503), s(503), s(200)], None, &[]).await;
    let opts = Object::new();
    Reflect::set(&opts, &"contentEncoding".into(), &"gzip".into()).unwrap();
    let p = rig.exporter.export(Uint8Array::from(&b"zz"[..]).into(), opts.into()).unwrap();
    assert_eq!(outcome(&JsFuture::from(p).await.unwrap()), "spooled");
    let (header, _) = RecordHeader::decode(&rig.stored()[0].1).unwrap();
    assert_eq!(header.content_encoding, "gzip");
    rig.advance(10_000.0);
    JsFuture::from(rig.exporter.wake()).await.unwrap();
    let requests = rig.list("requests");
    for i in 0..3 {
        let headers = get(&get(&requests.get(i), "init"), "headers");
        assert_eq!(get(&headers, "content-encoding").as_string().as_deref(), Some("gzip"), "request {i}");
    }
    let bad = Object::new();
    Reflect::set(&bad, &"contentEncoding".into(), &"x".repeat(40).into()).unwrap();
    assert!(rig.exporter.export(Uint8Array::from(&b"z"[..]).into(), bad.into()).is_err());
}
