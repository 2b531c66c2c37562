//! The record codec: how one spooled export is laid out in storage.
//!
//! A record is a small header followed by the payload bytes, unchanged:
//!
//! ```text
//! offset  size  field
//! 0       4     magic "ERX1"
//! 4       1     format version (1)
//! 5       1     flags (0; reserved)
//! 6       8     created_at, ms since the Unix epoch, little endian
//! 14      8     payload length, little endian
//! 22      4     CRC-32 (IEEE) of the payload
//! 26      2     content type length n (<= 256)
//! 28      n     content type, UTF-8
//! 28+n    2     content encoding length e (<= 32; 0: none)
//! 30+n    e     content encoding, UTF-8 (e.g. "gzip")
//! 30+n+e  2     URL length m (<= 8192)
//! 32+n+e  m     target URL, UTF-8
//! ...     4     CRC-32 of every header byte before it
//! ...     ...   payload
//! ```
//!
//! No header value of the exporter's configuration is ever part of a record:
//! credentials are supplied again from configuration when the record is sent.
//! Decoding checks both checksums and every length, so a flipped bit, a truncated
//! write or a foreign file is reported as [`RecordError`], never trusted.

use core::fmt;

/// CRC-32 (IEEE 802.3, the zlib one) with a 1 KiB table: small in wasm, and
/// fast enough for the slow path it serves (spool writes and reads).
const CRC32: crc::Crc<u32, crc::Table<1>> = crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);

/// An incremental CRC-32 of a payload fed in pieces.
pub struct Checksum(crc::Digest<'static, u32, crc::Table<1>>);

impl Checksum {
    pub fn new() -> Self {
        Checksum(CRC32.digest())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum::new()
    }
}

/// The CRC-32 of `bytes` in one go.
pub fn checksum(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

const MAGIC: &[u8; 4] = b"ERX1";
const VERSION: u8 = 1;
const FIXED_LEN: usize = 4 + 1 + 1 + 8 + 8 + 4 + 2;
pub const MAX_CONTENT_TYPE_LEN: usize = 256;
pub const MAX_CONTENT_ENCODING_LEN: usize = 32;
pub const MAX_URL_LEN: usize = 8192;
/// No header is longer than this; reading this many bytes always covers it.
pub const MAX_HEADER_LEN: usize = FIXED_LEN + MAX_CONTENT_TYPE_LEN + 2 + MAX_CONTENT_ENCODING_LEN + 2 + MAX_URL_LEN + 4;

/// What a record says about its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub created_at_ms: u64,
    pub payload_len: u64,
    pub payload_crc: u32,
    pub content_type: String,
    /// The payload's `Content-Encoding` (e.g. `gzip`); empty for none.
    pub content_encoding: String,
    pub url: String,
}

/// Why a stored record cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    Truncated { needed: usize, have: usize },
    BadMagic,
    UnsupportedVersion(u8),
    HeaderChecksum,
    FieldTooLong(&'static str),
    NotUtf8(&'static str),
    LengthMismatch { header: u64, stored: u64 },
    PayloadChecksum,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated { needed, have } => write!(f, "truncated header ({have} of {needed} bytes)"),
            RecordError::BadMagic => write!(f, "not an export-retry record"),
            RecordError::UnsupportedVersion(v) => write!(f, "unsupported record version {v}"),
            RecordError::HeaderChecksum => write!(f, "header checksum mismatch"),
            RecordError::FieldTooLong(field) => write!(f, "{field} too long"),
            RecordError::NotUtf8(field) => write!(f, "{field} is not UTF-8"),
            RecordError::LengthMismatch { header, stored } => {
                write!(f, "payload length {stored} differs from the header's {header}")
            }
            RecordError::PayloadChecksum => write!(f, "payload checksum mismatch"),
        }
    }
}

impl RecordHeader {
    /// Encodes the header. Fails only when a field exceeds its limit.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        if self.content_type.len() > MAX_CONTENT_TYPE_LEN {
            return Err(RecordError::FieldTooLong("content type"));
        }
        if self.content_encoding.len() > MAX_CONTENT_ENCODING_LEN {
            return Err(RecordError::FieldTooLong("content encoding"));
        }
        if self.url.len() > MAX_URL_LEN {
            return Err(RecordError::FieldTooLong("URL"));
        }
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(0);
        out.extend_from_slice(&self.created_at_ms.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.extend_from_slice(&self.payload_crc.to_le_bytes());
        out.extend_from_slice(&(self.content_type.len() as u16).to_le_bytes());
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(&(self.content_encoding.len() as u16).to_le_bytes());
        out.extend_from_slice(self.content_encoding.as_bytes());
        out.extend_from_slice(&(self.url.len() as u16).to_le_bytes());
        out.extend_from_slice(self.url.as_bytes());
        let crc = checksum(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes a header from the first bytes of a record (at least the whole
    /// header; [`MAX_HEADER_LEN`] bytes always suffice). Returns the header and its
    /// length, where the payload starts.
    pub fn decode(bytes: &[u8]) -> Result<(RecordHeader, usize), RecordError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(RecordError::BadMagic);
        }
        let version = r.take(1)?[0];
        if version != VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        r.take(1)?; // flags
        let created_at_ms = r.u64()?;
        let payload_len = r.u64()?;
        let payload_crc = r.u32()?;
        let content_type = r.string("content type", MAX_CONTENT_TYPE_LEN)?;
        let content_encoding = r.string("content encoding", MAX_CONTENT_ENCODING_LEN)?;
        let url = r.string("URL", MAX_URL_LEN)?;
        let header_end = r.at;
        let crc = r.u32()?;
        if crc != checksum(&bytes[..header_end]) {
            return Err(RecordError::HeaderChecksum);
        }
        Ok((RecordHeader { created_at_ms, payload_len, payload_crc, content_type, content_encoding, url }, r.at))
    }

    /// Checks the payload that followed the header: its length and checksum.
    pub fn verify_payload(&self, stored_len: u64, crc: u32) -> Result<(), RecordError> {
        if stored_len != self.payload_len {
            return Err(RecordError::LengthMismatch { header: self.payload_len, stored: stored_len });
        }
        if crc != self.payload_crc {
            return Err(RecordError::PayloadChecksum);
        }
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.at + n;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(RecordError::Truncated { needed: end, have: self.bytes.len() })?;
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn string(&mut self, field: &'static str, max: usize) -> Result<String, RecordError> {
        let len = self.u16()? as usize;
        if len > max {
            return Err(RecordError::FieldTooLong(field));
        }
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| RecordError::NotUtf8(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> RecordHeader {
        RecordHeader {
            created_at_ms: 1_700_000_000_123,
            payload_len: payload.len() as u64,
            payload_crc: checksum(payload),
            content_type: "application/x-protobuf".into(),
            content_encoding: "gzip".into(),
            url: "https://collector.example/v1/traces".into(),
        }
    }

    #[test]
    fn round_trip() {
        let payload = b"hello spool";
        let header = sample(payload);
        let mut bytes = header.encode().unwrap();
        let header_len = bytes.len();
        bytes.extend_from_slice(payload);
        let (decoded, at) = RecordHeader::decode(&bytes).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(at, header_len);
        decoded.verify_payload(payload.len() as u64, checksum(&bytes[at..])).unwrap();
    }

    #[test]
    fn every_flipped_header_bit_is_detected() {
        let bytes = sample(b"x").encode().unwrap();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(RecordHeader::decode(&bad).is_err(), "bit {i} flipped went unnoticed");
        }
    }

    #[test]
    fn truncation_anywhere_is_detected() {
        let bytes = sample(b"x").encode().unwrap();
        for len in 0..bytes.len() {
            assert!(
                matches!(RecordHeader::decode(&bytes[..len]), Err(RecordError::Truncated { .. }) | Err(RecordError::FieldTooLong(_))),
                "len {len}"
            );
        }
    }

    #[test]
    fn payload_damage_is_detected() {
        let header = sample(b"payload");
        assert_eq!(header.verify_payload(6, checksum(b"payloa")), Err(RecordError::LengthMismatch { header: 7, stored: 6 }));
        assert_eq!(header.verify_payload(7, checksum(b"pAyload")), Err(RecordError::PayloadChecksum));
    }

    #[test]
    fn foreign_bytes_are_not_a_record() {
        assert_eq!(RecordHeader::decode(b"{\"json\": true, \"padding\": \"...........\"}"), Err(RecordError::BadMagic));
        let mut other_version = sample(b"").encode().unwrap();
        other_version[4] = 9;
        assert_eq!(RecordHeader::decode(&other_version), Err(RecordError::UnsupportedVersion(9)));
    }

    #[test]
    fn oversized_fields_are_refused_when_encoding() {
        let mut header = sample(b"");
        header.content_type = "x".repeat(MAX_CONTENT_TYPE_LEN + 1);
        assert_eq!(header.encode(), Err(RecordError::FieldTooLong("content type")));
        let mut header = sample(b"");
        header.url = "x".repeat(MAX_URL_LEN + 1);
        assert_eq!(header.encode(), Err(RecordError::FieldTooLong("URL")));
        let mut header = sample(b"");
        header.content_encoding = "z".repeat(MAX_CONTENT_ENCODING_LEN + 1);
        assert_eq!(header.encode(), Err(RecordError::FieldTooLong("content encoding")));
        let mut header = sample(b"");
        header.url = "x".repeat(MAX_URL_LEN);
        header.content_type = "y".repeat(MAX_CONTENT_TYPE_LEN);
        header.content_encoding = "z".repeat(MAX_CONTENT_ENCODING_LEN);
        assert_eq!(header.encode().unwrap().len(), MAX_HEADER_LEN);
    }
}
