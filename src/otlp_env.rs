//! The OpenTelemetry exporter environment variables this crate reads.
//!
//! `OTEL_EXPORTER_OTLP_HEADERS` is a comma-separated list of `key=value` pairs,
//! each side percent-encoded (the W3C Baggage format the OpenTelemetry
//! specification names). A malformed list is an error naming the variable:
//! credentials silently dropped would turn into a stream of 401s.

use crate::policy::OptionError;

/// Parses an `OTEL_EXPORTER_OTLP_HEADERS`-style list into (name, value) pairs.
/// `variable` names the source in errors.
pub fn parse_headers(variable: &str, raw: &str) -> Result<Vec<(String, String)>, OptionError> {
    let mut headers = Vec::new();
    for item in raw.split(',') {
        if item.trim().is_empty() {
            continue;
        }
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| OptionError::new(variable, format!("entry \"{}\" is not key=value", item.trim())))?;
        let key = decode(variable, key.trim())?;
        let value = decode(variable, value.trim())?;
        if key.is_empty() || !key.chars().all(is_token_char) {
            return Err(OptionError::new(variable, format!("\"{key}\" is not a valid header name")));
        }
        if value.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
            return Err(OptionError::new(variable, format!("the value of \"{key}\" contains a line break or NUL")));
        }
        headers.push((key.to_ascii_lowercase(), value));
    }
    Ok(headers)
}

/// Parses an `OTEL_EXPORTER_OTLP_TIMEOUT`-style value: whole milliseconds, > 0.
/// `variable` names the source in errors.
pub fn parse_timeout_ms(variable: &str, raw: &str) -> Result<u64, OptionError> {
    match raw.trim().parse::<u64>() {
        Ok(0) => Err(OptionError::new(variable, "must be greater than 0")),
        Ok(ms) => Ok(ms),
        Err(_) => Err(OptionError::new(variable, format!("must be a whole number of milliseconds, got \"{raw}\""))),
    }
}

/// The characters of an HTTP header name (RFC 9110 token).
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn decode(variable: &str, s: &str) -> Result<String, OptionError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| OptionError::new(variable, format!("\"{s}\" does not percent-decode to UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &str = "OTEL_EXPORTER_OTLP_HEADERS";

    #[test]
    fn parses_pairs_with_percent_encoding() {
        let h = parse_headers(VAR, "Authorization=Bearer%20abc%3D%3D, x-api-key = k1 ,,").unwrap();
        assert_eq!(h, vec![("authorization".into(), "Bearer abc==".into()), ("x-api-key".into(), "k1".into())]);
        assert_eq!(parse_headers(VAR, "").unwrap(), vec![]);
        assert_eq!(parse_headers(VAR, "a=").unwrap(), vec![("a".into(), "".into())]);
        assert_eq!(parse_headers(VAR, "a=b=c").unwrap(), vec![("a".into(), "b=c".into())]);
    }

    #[test]
    fn timeouts_are_whole_positive_milliseconds() {
        assert_eq!(parse_timeout_ms("T", " 2500 "), Ok(2500));
        for bad in ["", "ten", "1.5", "-3", "0"] {
            assert_eq!(parse_timeout_ms("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", bad).unwrap_err().option, "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT");
        }
    }

    #[test]
    fn malformed_lists_name_the_variable() {
        for bad in ["novalue", "=x", "bad key=1", "a=%0d%0aInjected: yes", "a=%ff"] {
            let err = parse_headers(VAR, bad).unwrap_err();
            assert_eq!(err.option, VAR, "{bad}");
        }
    }
}
