//! The spool index: which records are in storage, in what order, and how many bytes.
//!
//! # Storage layout
//!
//! Each spooled export is one record ([`crate::record`]) stored under one or more
//! keys. The key names the record and its payload length, so that a new exporter
//! rebuilds the index from a key listing alone, without reading any value:
//!
//! ```text
//! r<seq:016x>.<instance:08x>.<payload_len:x>          head (the record's first bytes)
//! r<seq:016x>.<instance:08x>.<payload_len:x>.<i:x>    chunk i >= 1, when the record
//!                                                     exceeds the storage's value limit
//! ```
//!
//! `seq` orders records oldest first (it is at least the creation time in ms, and
//! strictly increasing per exporter); `instance` is random per exporter, so two
//! exporters sharing one storage never write the same key.
//!
//! # Durability and recovery
//!
//! A record counts as spooled once its head is stored: chunks are written first and
//! the head last, and on delivery the head is deleted first. So after a crash at
//! any point, a head means a complete record, and chunks without a head are the
//! remains of an unfinished write or delete; recovery removes them. Keys that do
//! not parse are left alone and reported. A record whose bytes fail their checks is
//! found when the drain reads it, then removed and counted as corrupt.

use std::collections::BTreeMap;

/// Identifies a record: ordered by `seq`, then `instance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    pub seq: u64,
    pub instance: u32,
}

/// What the index knows of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub payload_len: u64,
    /// Number of stored pieces: the head plus its chunks.
    pub pieces: u32,
    pub in_flight: bool,
}

/// The storage key of piece `piece` (0 = head) of a record.
pub fn key(id: RecordId, payload_len: u64, piece: u32) -> String {
    if piece == 0 {
        format!("r{:016x}.{:08x}.{:x}", id.seq, id.instance, payload_len)
    } else {
        format!("r{:016x}.{:08x}.{:x}.{:x}", id.seq, id.instance, payload_len, piece)
    }
}

/// Every key of a record, head first (the order to delete in).
pub fn keys(id: RecordId, entry: &Entry) -> Vec<String> {
    (0..entry.pieces).map(|piece| key(id, entry.payload_len, piece)).collect()
}

/// A parsed storage key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedKey {
    pub id: RecordId,
    pub payload_len: u64,
    pub piece: u32,
}

/// Parses a key written by [`key`]; anything else is `None`.
pub fn parse_key(key: &str) -> Option<ParsedKey> {
    let rest = key.strip_prefix('r')?;
    let mut parts = rest.split('.');
    let seq = hex(parts.next()?, 16, true)?;
    let instance = hex(parts.next()?, 8, true)? as u32;
    let payload_len = hex(parts.next()?, 16, false)?;
    let piece = match parts.next() {
        None => 0,
        Some(p) => match hex(p, 8, false)? {
            0 => return None,
            n => n as u32,
        },
    };
    if parts.next().is_some() {
        return None;
    }
    Some(ParsedKey { id: RecordId { seq, instance }, payload_len, piece })
}

fn hex(s: &str, max_len: usize, exact: bool) -> Option<u64> {
    let ok_len = if exact { s.len() == max_len } else { !s.is_empty() && s.len() <= max_len };
    if !ok_len || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    if !exact && s.len() > 1 && s.starts_with('0') {
        return None; // one spelling per number
    }
    u64::from_str_radix(s, 16).ok()
}

/// What a key listing holds besides complete records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Chunks with no head: remains of an interrupted write or delete, to remove.
    pub orphans: Vec<String>,
    /// Keys that are not ours; left alone.
    pub strays: Vec<String>,
}

/// The in-memory index of the spool. Every operation is O(log n) or better.
#[derive(Clone, Debug, Default)]
pub struct SpoolIndex {
    entries: BTreeMap<RecordId, Entry>,
    queued_bytes: u64,
    /// Bytes of records being written now; they count against capacity.
    reserved_bytes: u64,
    reserved: u64,
    /// Records removed from the index whose delete failed: they still occupy
    /// storage (and come back after a restart), so they count against capacity.
    undeleted_bytes: u64,
    undeleted: u64,
    last_seq: u64,
}

impl SpoolIndex {
    /// Rebuilds the index from a storage listing.
    pub fn recover<'a>(keys: impl IntoIterator<Item = &'a str>) -> (SpoolIndex, Leftovers) {
        let mut heads: BTreeMap<RecordId, Entry> = BTreeMap::new();
        let mut chunks: BTreeMap<(RecordId, u64), Vec<(u32, &'a str)>> = BTreeMap::new();
        let mut leftovers = Leftovers::default();
        for key in keys {
            match parse_key(key) {
                None => leftovers.strays.push(key.to_string()),
                Some(p) if p.piece == 0 => {
                    heads.insert(p.id, Entry { payload_len: p.payload_len, pieces: 1, in_flight: false });
                }
                Some(p) => chunks.entry((p.id, p.payload_len)).or_default().push((p.piece, key)),
            }
        }
        for ((id, len), pieces) in chunks {
            match heads.get_mut(&id) {
                Some(head) if head.payload_len == len => {
                    head.pieces = head.pieces.max(1 + pieces.iter().map(|(i, _)| *i).max().unwrap_or(0));
                }
                _ => leftovers.orphans.extend(pieces.into_iter().map(|(_, k)| k.to_string())),
            }
        }
        let mut index = SpoolIndex::default();
        for (id, entry) in heads {
            index.last_seq = index.last_seq.max(id.seq);
            index.queued_bytes += entry.payload_len;
            index.entries.insert(id, entry);
        }
        (index, leftovers)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Payload bytes of the records in the index.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Records and bytes held, being written, or left undeleted in storage: what
    /// capacity is judged on.
    pub fn held(&self) -> (u64, u64) {
        (
            self.entries.len() as u64 + self.reserved + self.undeleted,
            self.queued_bytes + self.reserved_bytes + self.undeleted_bytes,
        )
    }

    /// A removed record's delete failed: its bytes stay in storage.
    pub fn note_undeleted(&mut self, payload_len: u64) {
        self.undeleted += 1;
        self.undeleted_bytes += payload_len;
    }

    /// Takes the next id for a record created at `now` and reserves its bytes.
    pub fn reserve(&mut self, instance: u32, payload_len: u64, now: u64) -> RecordId {
        self.last_seq = (self.last_seq + 1).max(now);
        self.reserved += 1;
        self.reserved_bytes += payload_len;
        RecordId { seq: self.last_seq, instance }
    }

    /// Ends a reservation: the record is stored (`Some(pieces)`) or abandoned (`None`).
    pub fn settle(&mut self, id: RecordId, payload_len: u64, stored_pieces: Option<u32>) {
        self.reserved -= 1;
        self.reserved_bytes -= payload_len;
        if let Some(pieces) = stored_pieces {
            self.entries.insert(id, Entry { payload_len, pieces, in_flight: false });
            self.queued_bytes += payload_len;
        }
    }

    /// The oldest record not already being sent, marked as in flight.
    pub fn take_oldest(&mut self) -> Option<(RecordId, Entry)> {
        let (id, entry) = self.entries.iter_mut().find(|(_, e)| !e.in_flight)?;
        entry.in_flight = true;
        Some((*id, *entry))
    }

    /// True when some record is waiting to be sent (not in flight).
    pub fn has_waiting(&self) -> bool {
        self.entries.values().any(|e| !e.in_flight)
    }

    /// Puts an in-flight record back in line (its attempt failed).
    pub fn release(&mut self, id: RecordId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.in_flight = false;
        }
    }

    /// Removes a record (delivered, rejected or corrupt) and returns its entry.
    pub fn remove(&mut self, id: RecordId) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        self.queued_bytes -= entry.payload_len;
        Some(entry)
    }

    /// The records in order, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordId, &Entry)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: RecordId = RecordId { seq: 0x1_8c00_0000_0001, instance: 0xdead_beef };

    #[test]
    fn keys_round_trip_and_sort_oldest_first() {
        let head = key(A, 1000, 0);
        assert_eq!(head, "r00018c0000000001.deadbeef.3e8");
        assert_eq!(parse_key(&head), Some(ParsedKey { id: A, payload_len: 1000, piece: 0 }));
        assert_eq!(parse_key(&key(A, 1000, 17)).unwrap().piece, 17);
        let later = RecordId { seq: A.seq + 1, instance: 0 };
        assert!(key(A, 99999, 3) < key(later, 1, 0));
    }

    #[test]
    fn foreign_keys_do_not_parse() {
        for k in [
            "", "r", "notes.txt", ".tmp-r1", "r00018c0000000001.deadbeef", "r00018c0000000001.deadbeef.3e8.0",
            "r00018c0000000001.deadbeef.03e8", "r00018c0000000001.DEADBEEF.3e8", "r18c0000000001.deadbeef.3e8",
            "r00018c0000000001.deadbeef.3e8.1.2", "r00018c0000000001.deadbeef.zz",
        ] {
            assert_eq!(parse_key(k), None, "{k:?}");
        }
    }

    #[test]
    fn recover_rebuilds_order_bytes_and_pieces() {
        let b = RecordId { seq: A.seq + 5, instance: 1 };
        let keys = [key(b, 10, 0), key(A, 3_000_000, 2), key(A, 3_000_000, 0), key(A, 3_000_000, 1)];
        let (index, leftovers) = SpoolIndex::recover(keys.iter().map(String::as_str));
        assert_eq!(leftovers, Leftovers::default());
        assert_eq!(index.len(), 2);
        assert_eq!(index.queued_bytes(), 3_000_010);
        let order: Vec<_> = index.iter().map(|(id, e)| (*id, e.pieces)).collect();
        assert_eq!(order, vec![(A, 3), (b, 1)]);
    }

    #[test]
    fn recover_separates_orphans_and_strays() {
        let keys = [key(A, 50, 1), "README".to_string(), key(RecordId { seq: 9, instance: 9 }, 4, 0)];
        let (index, leftovers) = SpoolIndex::recover(keys.iter().map(String::as_str));
        assert_eq!(index.len(), 1);
        assert_eq!(leftovers.orphans, vec![key(A, 50, 1)]);
        assert_eq!(leftovers.strays, vec!["README".to_string()]);
    }

    #[test]
    fn ids_increase_past_recovered_ones_even_if_the_clock_went_back() {
        let keys = [key(A, 1, 0)];
        let (mut index, _) = SpoolIndex::recover(keys.iter().map(String::as_str));
        let id = index.reserve(7, 5, 1_000);
        assert!(id.seq > A.seq);
        assert_eq!(index.held(), (2, 6));
        index.settle(id, 5, Some(1));
        assert_eq!(index.held(), (2, 6));
        assert_eq!(index.queued_bytes(), 6);
    }

    #[test]
    fn take_release_remove() {
        let mut index = SpoolIndex::default();
        let ids: Vec<_> = (0..3).map(|i| index.reserve(1, 10, i)).collect();
        for id in &ids {
            index.settle(*id, 10, Some(1));
        }
        let (first, _) = index.take_oldest().unwrap();
        let (second, _) = index.take_oldest().unwrap();
        assert_eq!((first, second), (ids[0], ids[1]));
        index.release(first);
        assert_eq!(index.take_oldest().unwrap().0, ids[0], "released entry goes first again");
        assert_eq!(index.remove(ids[1]).unwrap().payload_len, 10);
        assert_eq!(index.queued_bytes(), 20);
    }
}
