//! Bounds-checked reading and writing of wire formats.
//!
//! Every parser of network input in punktfunk goes through [`Reader`], which returns
//! [`WireError::Truncated`] instead of panicking when input runs out. [`Writer`] does
//! the same for fixed-size output buffers, so a wrong size computation becomes an
//! error value rather than an out-of-bounds panic.

use thiserror::Error;

/// Input ended before a field could be read, or output space ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    /// A field needed more bytes than were left.
    #[error("truncated input: needed {needed} more bytes at offset {offset}, {available} left")]
    Truncated {
        /// Offset of the field that could not be read.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A write did not fit the output buffer.
    #[error("output buffer full: {needed} bytes at offset {offset} exceed capacity {capacity}")]
    Overflow {
        /// Offset of the write that failed.
        offset: usize,
        /// Bytes the write needed.
        needed: usize,
        /// Size of the output buffer.
        capacity: usize,
    },
}

/// A cursor over received bytes. All reads are bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.remaining() {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), WireError> {
        self.bytes(n).map(|_| ())
    }

    /// Takes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16_be(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a little-endian u16.
    pub fn u16_le(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Reads a big-endian u32.
    pub fn u32_be(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a little-endian u32.
    pub fn u32_le(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a big-endian u64.
    pub fn u64_be(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a little-endian i16.
    pub fn i16_le(&mut self) -> Result<i16, WireError> {
        Ok(i16::from_le_bytes(self.array()?))
    }

    /// Reads a big-endian i16.
    pub fn i16_be(&mut self) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    /// Reads a little-endian f32.
    pub fn f32_le(&mut self) -> Result<f32, WireError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
}

/// A cursor writing into a fixed output buffer. All writes are bounds-checked.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// Starts writing at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Writes raw bytes.
    pub fn bytes(&mut self, data: &[u8]) -> Result<(), WireError> {
        let end = self
            .pos
            .checked_add(data.len())
            .filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(WireError::Overflow {
                offset: self.pos,
                needed: data.len(),
                capacity: self.buf.len(),
            });
        };
        self.buf[self.pos..end].copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    /// Writes one byte.
    pub fn u8(&mut self, v: u8) -> Result<(), WireError> {
        self.bytes(&[v])
    }

    /// Writes a big-endian u16.
    pub fn u16_be(&mut self, v: u16) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    /// Writes a little-endian u16.
    pub fn u16_le(&mut self, v: u16) -> Result<(), WireError> {
        self.bytes(&v.to_le_bytes())
    }

    /// Writes a big-endian u32.
    pub fn u32_be(&mut self, v: u32) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    /// Writes a little-endian u32.
    pub fn u32_le(&mut self, v: u32) -> Result<(), WireError> {
        self.bytes(&v.to_le_bytes())
    }

    /// Writes a big-endian u64.
    pub fn u64_be(&mut self, v: u64) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    /// Writes `n` zero bytes.
    pub fn zeros(&mut self, n: usize) -> Result<(), WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(WireError::Overflow {
                offset: self.pos,
                needed: n,
                capacity: self.buf.len(),
            });
        };
        self.buf[self.pos..end].fill(0);
        self.pos = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_with_offsets() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16_be().unwrap(), 0x0102);
        assert_eq!(
            r.u32_le(),
            Err(WireError::Truncated {
                offset: 2,
                needed: 4,
                available: 1
            })
        );
        // A failed read consumes nothing.
        assert_eq!(r.u8().unwrap(), 3);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn writer_refuses_overflow() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        w.u16_le(0xBEEF).unwrap();
        assert!(matches!(w.u16_be(1), Err(WireError::Overflow { .. })));
        w.u8(7).unwrap();
        assert_eq!(buf, [0xEF, 0xBE, 7]);
    }
}
