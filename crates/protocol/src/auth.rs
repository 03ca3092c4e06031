//! Mutual authentication of a TCP linker and executor by a shared token, which never crosses
//! the connection: each side proves that it knows it with an HMAC-SHA256 of both sides' fresh
//! nonces.
//!
//! The exchange (frames as usual, each at most `MAX_HANDSHAKE_FRAME` bytes):
//!
//! 1. linker → executor: `Request::Hello { version, nonce: Nl }`
//! 2. executor → linker: `Response::Challenge { nonce: Ne }` (or `Failed` for another version)
//! 3. linker → executor: `Request::Authenticate { proof: linker_proof(Nl, Ne) }`
//! 4. the executor checks the proof and, if wrong, closes the connection saying nothing more;
//!    else executor → linker: `Response::Hello { .., proof: executor_proof(Nl, Ne, hello) }`,
//!    or `Response::Refused { reason, proof: refusal_proof(Nl, Ne, reason) }`.
//! 5. the linker checks the executor's proof before it uses anything the executor said.
//!
//! The linker proves itself first so that a client without the token gets nothing from the
//! executor but a random challenge. Each proof is bound to its role by a label, so that one
//! side's proof cannot be replayed as the other's, and to both nonces, so that none can be
//! replayed from another connection. What an impostor executor does get, the linker's proof,
//! lets it test guesses of the token offline: hence the minimum token length, and random
//! tokens (the executor generates one of 128 bits when none is given).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// Bytes of a handshake nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of an HMAC-SHA256 proof.
pub const PROOF_LEN: usize = 32;
/// The shortest token either side accepts. A token can be guessed offline by an impostor
/// executor from one proof (see above), so it must be long enough to resist that.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest token accepted: longer keys are hashed by HMAC anyway, and this keeps a
/// mistaken value (a file's content) from being used.
pub const MAX_TOKEN_LEN: usize = 1024;

/// The shared secret of a TCP executor and its linkers. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token(Vec<u8>);

/// Why a token is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Fewer bytes than the minimum (16).
    TooShort {
        /// The token's length.
        len: usize,
    },
    /// More bytes than a frame of the handshake can carry.
    TooLong {
        /// The token's length.
        len: usize,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooShort { len } => write!(
                f,
                "RJITLINK_TOKEN must be at least {MIN_TOKEN_LEN} bytes long (it has {len}); unset it and the executor generates one"
            ),
            TokenError::TooLong { len } => write!(
                f,
                "RJITLINK_TOKEN must be at most {MAX_TOKEN_LEN} bytes long (it has {len})"
            ),
        }
    }
}

impl std::error::Error for TokenError {}

impl Token {
    /// A token of `MIN_TOKEN_LEN` to `MAX_TOKEN_LEN` bytes.
    pub fn new(bytes: &[u8]) -> Result<Token, TokenError> {
        match bytes.len() {
            len if len < MIN_TOKEN_LEN => Err(TokenError::TooShort { len }),
            len if len > MAX_TOKEN_LEN => Err(TokenError::TooLong { len }),
            _ => Ok(Token(bytes.to_vec())),
        }
    }

    /// A fresh token: 16 random bytes as 32 hex digits (printable, so that it can be passed
    /// in an environment variable).
    pub fn generate() -> std::io::Result<Token> {
        let mut bytes = [0u8; 16];
        random_bytes(&mut bytes)?;
        Ok(Token(
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ))
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(label);
        for part in parts {
            // Length-prefixed, so that no two different transcripts hash alike.
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }

    fn prove(&self, label: &[u8], parts: &[&[u8]]) -> [u8; PROOF_LEN] {
        self.mac(label, parts).finalize().into_bytes().into()
    }

    /// In constant time: whether `proof` is this token's for the transcript.
    fn check(&self, label: &[u8], parts: &[&[u8]], proof: &[u8]) -> bool {
        self.mac(label, parts).verify_slice(proof).is_ok()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({} bytes)", self.0.len())
    }
}

const LINKER: &[u8] = b"rjitlink linker proof v3\0";
const EXECUTOR: &[u8] = b"rjitlink executor proof v3\0";
const REFUSAL: &[u8] = b"rjitlink executor refusal v3\0";

/// What the executor says of itself in its hello, covered by its proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutorInfo {
    /// Its protocol version.
    pub version: u32,
    /// Its page size.
    pub page_size: u64,
    /// Its process id.
    pub pid: u32,
    /// What it offers (`CAPABILITY_*` bits).
    pub capabilities: u64,
}

impl ExecutorInfo {
    fn bytes(&self) -> [u8; 24] {
        let mut bytes = [0u8; 24];
        bytes[..4].copy_from_slice(&self.version.to_le_bytes());
        bytes[4..12].copy_from_slice(&self.page_size.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.pid.to_le_bytes());
        bytes[16..].copy_from_slice(&self.capabilities.to_le_bytes());
        bytes
    }
}

/// The two nonces of one handshake.
#[derive(Clone, Copy, Debug)]
pub struct Nonces<'a> {
    /// The linker's nonce.
    pub linker: &'a [u8],
    /// The executor's nonce.
    pub executor: &'a [u8],
}

impl Token {
    /// The linker's proof that it knows the token.
    pub fn linker_proof(&self, nonces: Nonces<'_>) -> [u8; PROOF_LEN] {
        self.prove(LINKER, &[nonces.linker, nonces.executor])
    }

    /// Whether `proof` is the linker's proof for `nonces` (compared in constant time).
    pub fn check_linker_proof(&self, nonces: Nonces<'_>, proof: &[u8]) -> bool {
        self.check(LINKER, &[nonces.linker, nonces.executor], proof)
    }

    /// The executor's proof that it knows the token, vouching for what it says of itself.
    pub fn executor_proof(&self, nonces: Nonces<'_>, info: &ExecutorInfo) -> [u8; PROOF_LEN] {
        self.prove(EXECUTOR, &[nonces.linker, nonces.executor, &info.bytes()])
    }

    /// Whether `proof` is the executor's proof for `nonces` and `info` (constant time).
    pub fn check_executor_proof(
        &self,
        nonces: Nonces<'_>,
        info: &ExecutorInfo,
        proof: &[u8],
    ) -> bool {
        self.check(
            EXECUTOR,
            &[nonces.linker, nonces.executor, &info.bytes()],
            proof,
        )
    }

    /// The executor's proof for a refusal to serve an authenticated linker (it is busy).
    pub fn refusal_proof(&self, nonces: Nonces<'_>, reason: &[u8]) -> [u8; PROOF_LEN] {
        self.prove(REFUSAL, &[nonces.linker, nonces.executor, reason])
    }

    /// Whether `proof` vouches for the refusal `reason` (constant time).
    pub fn check_refusal_proof(&self, nonces: Nonces<'_>, reason: &[u8], proof: &[u8]) -> bool {
        self.check(REFUSAL, &[nonces.linker, nonces.executor, reason], proof)
    }
}

/// Fill `buffer` from the kernel's random number generator.
pub fn random_bytes(buffer: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let rest = &mut buffer[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        filled += n as usize;
    }
    Ok(())
}

/// A fresh nonce.
pub fn nonce() -> std::io::Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Token {
        Token::new(text.as_bytes()).unwrap()
    }

    #[test]
    fn tokens_have_a_minimum_length() {
        assert_eq!(
            Token::new(b"short").unwrap_err(),
            TokenError::TooShort { len: 5 }
        );
        assert!(Token::new(&[b'x'; MIN_TOKEN_LEN]).is_ok());
        assert!(Token::new(&[b'x'; MAX_TOKEN_LEN + 1]).is_err());
        let generated = Token::generate().unwrap();
        assert_eq!(generated.as_bytes().len(), 32);
        assert!(
            !format!("{generated:?}").contains(std::str::from_utf8(generated.as_bytes()).unwrap())
        );
    }

    #[test]
    fn proofs_are_bound_to_token_role_and_nonces() {
        let (a, b) = (token("the right token!"), token("the wrong token!"));
        let (n1, n2, n3) = (nonce().unwrap(), nonce().unwrap(), nonce().unwrap());
        let nonces = Nonces {
            linker: &n1,
            executor: &n2,
        };
        let proof = a.linker_proof(nonces);
        assert!(a.check_linker_proof(nonces, &proof));
        assert!(!b.check_linker_proof(nonces, &proof));
        assert!(!a.check_linker_proof(
            Nonces {
                linker: &n1,
                executor: &n3
            },
            &proof
        ));
        // Swapped nonces, a truncated proof, an empty one.
        assert!(!a.check_linker_proof(
            Nonces {
                linker: &n2,
                executor: &n1
            },
            &proof
        ));
        assert!(!a.check_linker_proof(nonces, &proof[..16]));
        assert!(!a.check_linker_proof(nonces, b""));
        // The linker's proof is not the executor's, nor a refusal's.
        let info = ExecutorInfo {
            version: 3,
            page_size: 4096,
            pid: 7,
            capabilities: 1,
        };
        assert!(!a.check_executor_proof(nonces, &info, &proof));
        let executor = a.executor_proof(nonces, &info);
        assert!(a.check_executor_proof(nonces, &info, &executor));
        assert!(!a.check_executor_proof(nonces, &ExecutorInfo { pid: 8, ..info }, &executor));
        assert!(!a.check_refusal_proof(nonces, b"", &executor));
        let refusal = a.refusal_proof(nonces, b"busy");
        assert!(a.check_refusal_proof(nonces, b"busy", &refusal));
        assert!(!a.check_refusal_proof(nonces, b"busy!", &refusal));
    }
}
