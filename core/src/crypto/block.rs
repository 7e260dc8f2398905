//! AES-128 in the two block modes GameStream uses outside GCM.
//!
//! - CBC with PKCS#7 padding encrypts audio packets; the IV is the big-endian
//!   `rikeyid + RTP sequence number` in the first 4 bytes, zeros after
//!   (moonlight-common-c `AudioStream.c`, Sunshine `stream.cpp`).
//! - ECB without padding protects the pairing challenges; every message there is a
//!   whole number of 16-byte blocks (Sunshine `nvhttp.cpp`, `crypto.cpp`).

use aws_lc_rs::cipher::{
    AES_128, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext,
    PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};

use super::{AES128_KEY_LEN, CryptoError, aes128_key};

/// AES block size.
pub const BLOCK: usize = 16;

fn unbound(key: &[u8; AES128_KEY_LEN]) -> Result<UnboundCipherKey, CryptoError> {
    Ok(UnboundCipherKey::new(&AES_128, key)?)
}

/// The CBC IV of GameStream audio packet `sequence` under `rikeyid`.
pub fn audio_iv(rikeyid: u32, sequence: u16) -> [u8; BLOCK] {
    let mut iv = [0u8; BLOCK];
    iv[..4].copy_from_slice(&rikeyid.wrapping_add(u32::from(sequence)).to_be_bytes());
    iv
}

/// AES-128-CBC with PKCS#7 padding.
pub struct AesCbc {
    enc: PaddedBlockEncryptingKey,
    dec: PaddedBlockDecryptingKey,
}

impl std::fmt::Debug for AesCbc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesCbc(..)")
    }
}

impl AesCbc {
    /// A CBC cipher for `key`.
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let key = aes128_key(key)?;
        Ok(Self {
            enc: PaddedBlockEncryptingKey::cbc_pkcs7(unbound(&key)?)?,
            dec: PaddedBlockDecryptingKey::cbc_pkcs7(unbound(&key)?)?,
        })
    }

    /// Encrypts `data` in place, growing it by 1..=16 bytes of padding.
    pub fn encrypt(&self, iv: [u8; BLOCK], data: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.enc
            .less_safe_encrypt(data, EncryptionContext::Iv128(iv.into()))?;
        Ok(())
    }

    /// Decrypts `data` in place and returns the plaintext without padding.
    pub fn decrypt<'a>(
        &self,
        iv: [u8; BLOCK],
        data: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        if data.is_empty() || !data.len().is_multiple_of(BLOCK) {
            return Err(CryptoError::BlockLength(data.len()));
        }
        let len = data.len();
        self.dec
            .decrypt(data, DecryptionContext::Iv128(iv.into()))
            .map_err(|_| CryptoError::BlockLength(len))
    }
}

/// AES-128-ECB without padding.
pub struct AesEcb {
    enc: EncryptingKey,
    dec: DecryptingKey,
}

impl std::fmt::Debug for AesEcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesEcb(..)")
    }
}

impl AesEcb {
    /// An ECB cipher for `key`.
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let key = aes128_key(key)?;
        Ok(Self {
            enc: EncryptingKey::ecb(unbound(&key)?)?,
            dec: DecryptingKey::ecb(unbound(&key)?)?,
        })
    }

    fn check(data: &[u8]) -> Result<(), CryptoError> {
        if data.is_empty() || !data.len().is_multiple_of(BLOCK) {
            return Err(CryptoError::BlockLength(data.len()));
        }
        Ok(())
    }

    /// Encrypts whole blocks in place.
    pub fn encrypt(&self, data: &mut [u8]) -> Result<(), CryptoError> {
        Self::check(data)?;
        self.enc.less_safe_encrypt(data, EncryptionContext::None)?;
        Ok(())
    }

    /// Decrypts whole blocks in place.
    pub fn decrypt(&self, data: &mut [u8]) -> Result<(), CryptoError> {
        Self::check(data)?;
        self.dec.decrypt(data, DecryptionContext::None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// FIPS-197 appendix C.1: AES-128 on one block.
    #[test]
    fn ecb_matches_fips197() {
        let ecb = AesEcb::new(&unhex("000102030405060708090a0b0c0d0e0f")).unwrap();
        let mut block = unhex("00112233445566778899aabbccddeeff");
        ecb.encrypt(&mut block).unwrap();
        assert_eq!(block, unhex("69c4e0d86a7b0430d8cdb78070b4c55a"));
        ecb.decrypt(&mut block).unwrap();
        assert_eq!(block, unhex("00112233445566778899aabbccddeeff"));
        assert_eq!(
            ecb.encrypt(&mut [0u8; 15]),
            Err(CryptoError::BlockLength(15))
        );
    }

    /// NIST SP 800-38A F.2.1 (CBC-AES128 encrypt), first block, plus the PKCS#7 block
    /// a whole-block plaintext gains.
    #[test]
    fn cbc_matches_sp800_38a_and_pads() {
        let cbc = AesCbc::new(&unhex("2b7e151628aed2a6abf7158809cf4f3c")).unwrap();
        let iv: [u8; 16] = unhex("000102030405060708090a0b0c0d0e0f")
            .try_into()
            .unwrap();
        let mut data = unhex("6bc1bee22e409f96e93d7e117393172a");
        cbc.encrypt(iv, &mut data).unwrap();
        assert_eq!(data.len(), 32);
        assert_eq!(&data[..16], &unhex("7649abac8119b246cee98e9b12e9197d")[..]);
        let plain = cbc.decrypt(iv, &mut data).unwrap();
        assert_eq!(plain, &unhex("6bc1bee22e409f96e93d7e117393172a")[..]);
        assert!(cbc.decrypt(iv, &mut [0u8; 7]).is_err());
    }

    #[test]
    fn audio_iv_is_big_endian_sum() {
        let iv = audio_iv(0xFFFF_FFFF, 2);
        assert_eq!(&iv[..4], &[0, 0, 0, 1]);
        assert!(iv[4..].iter().all(|&b| b == 0));
    }
}
