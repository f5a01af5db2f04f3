//! XDR (RFC 4506) for the arguments and results of the logger's procedures.
//!
//! Owns: the few XDR primitives `rpc/logger.x` uses (unsigned int, int, unsigned
//! hyper, bounded string), a [`Reader`] over a byte slice that only shrinks and
//! checks every length against its bound before touching the bytes, and
//! [`XdrError`], whose variants name what failed (it becomes GARBAGE_ARGS).
//! Does not own: RPC message headers (`rpc`, with the onc-rpc crate) or the
//! interface's own types (`logrpc`).

/// Why an XDR value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum XdrError {
    /// The bytes ended inside `field`.
    #[error("xdr: truncated in {field}")]
    Truncated { field: &'static str },
    /// A string announced more bytes than its bound.
    #[error("xdr: {field} of {len} bytes exceeds its limit of {max}")]
    TooLong {
        field: &'static str,
        len: u32,
        max: u32,
    },
    /// A string that is not UTF-8.
    #[error("xdr: {field} is not UTF-8")]
    NotUtf8 { field: &'static str },
    /// Bytes left over after the last field.
    #[error("xdr: {extra} bytes left over")]
    Trailing { extra: usize },
}

/// Bytes of padding after `len` bytes of opaque data: "If n is not a multiple of
/// four, then the n bytes are followed by enough (0 to 3) residual zero bytes, r,
/// to make the total byte count a multiple of four" (RFC 4506 4.10).
pub(crate) fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Appends an unsigned int.
pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends an int.
pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends an unsigned hyper.
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a string: length, bytes, zero padding. The caller keeps `s` within the
/// bound the reader will apply.
pub(crate) fn put_string(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
    out.extend(std::iter::repeat_n(0, padding(s.len())));
}

#[cfg(test)]
/// Encoded size of a string.
pub(crate) fn string_len(s: &str) -> usize {
    4 + s.len() + padding(s.len())
}

/// Decodes XDR values from a byte slice.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], XdrError> {
        if self.rest.len() < n {
            return Err(XdrError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, XdrError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, XdrError> {
        Ok(self.u32(field)? as i32)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, XdrError> {
        let b = self.take(8, field)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    /// A string of at most `max` bytes. The length is checked against `max` and
    /// against the bytes present before anything is copied. Padding bytes are
    /// skipped without checking they are zero, as rpcgen's xdr_string does.
    pub(crate) fn string(&mut self, field: &'static str, max: u32) -> Result<String, XdrError> {
        let len = self.u32(field)?;
        if len > max {
            return Err(XdrError::TooLong { field, len, max });
        }
        let len = len as usize;
        let bytes = self.take(len, field)?;
        self.take(padding(len), field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| XdrError::NotUtf8 { field })
    }

    /// Succeeds when every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), XdrError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(XdrError::Trailing {
                extra: self.rest.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn string_is_padded_to_four_bytes() {
        let mut out = Vec::new();
        put_string(&mut out, "abcde");
        assert_eq!(out, [0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]);
        assert_eq!(string_len("abcde"), out.len());
        let mut r = Reader::new(&out);
        assert_eq!(r.string("s", 5).unwrap(), "abcde");
        r.finish().unwrap();
    }

    #[test]
    fn accepts_empty_string() {
        let mut r = Reader::new(&[0, 0, 0, 0]);
        assert_eq!(r.string("s", 0).unwrap(), "");
        r.finish().unwrap();
    }

    #[test]
    fn rejects_string_over_its_bound_before_reading_it() {
        // Announces 4 GB; only the length is present.
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            r.string("user", 256),
            Err(XdrError::TooLong {
                field: "user",
                len: u32::MAX,
                max: 256
            })
        );
    }

    #[test]
    fn rejects_truncated_string_and_padding() {
        let mut r = Reader::new(&[0, 0, 0, 3, b'a', b'b']);
        assert_eq!(
            r.string("user", 10),
            Err(XdrError::Truncated { field: "user" })
        );
        let mut r = Reader::new(&[0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(
            r.string("user", 10),
            Err(XdrError::Truncated { field: "user" })
        );
    }

    #[test]
    fn rejects_invalid_utf8() {
        let mut r = Reader::new(&[0, 0, 0, 1, 0xff, 0, 0, 0]);
        assert_eq!(r.string("op", 10), Err(XdrError::NotUtf8 { field: "op" }));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut r = Reader::new(&[0, 0, 0, 1, 9]);
        assert_eq!(r.u32("n").unwrap(), 1);
        assert_eq!(r.finish(), Err(XdrError::Trailing { extra: 1 }));
    }

    #[test]
    fn rejects_truncated_numbers() {
        assert!(Reader::new(&[0, 0, 1]).u32("n").is_err());
        assert!(Reader::new(&[0; 7]).u64("n").is_err());
    }

    proptest! {
        #[test]
        fn numbers_round_trip(a: u32, b: i32, c: u64) {
            let mut out = Vec::new();
            put_u32(&mut out, a);
            put_i32(&mut out, b);
            put_u64(&mut out, c);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.u32("a").unwrap(), a);
            prop_assert_eq!(r.i32("b").unwrap(), b);
            prop_assert_eq!(r.u64("c").unwrap(), c);
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn strings_round_trip(s in ".{0,300}") {
            let mut out = Vec::new();
            put_string(&mut out, &s);
            prop_assert_eq!(out.len() % 4, 0);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.string("s", 2000).unwrap(), s);
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.string("s", 16);
            let _ = r.u64("n");
            let _ = r.finish();
        }
    }
}
