//! The one place that turns records into bytes and back: a version byte
//! followed by the record in postcard. A record type names its current
//! version; reading an older version is the migration's job, reading a newer
//! one is refused.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A record stored in a table value.
pub trait Record: Serialize + DeserializeOwned {
    /// The record's kind, for error messages.
    const KIND: &'static str;
    /// The version written today.
    const VERSION: u8;
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{kind} record is empty")]
    Empty { kind: &'static str },
    #[error("{kind} record has version {found}, this orch reads version {expected}")]
    Version {
        kind: &'static str,
        found: u8,
        expected: u8,
    },
    #[error("{kind} record does not decode: {source}")]
    Decode {
        kind: &'static str,
        #[source]
        source: postcard::Error,
    },
    #[error("{kind} record does not encode: {source}")]
    Encode {
        kind: &'static str,
        #[source]
        source: postcard::Error,
    },
}

pub fn encode<T: Record>(record: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![T::VERSION];
    let body = postcard::to_stdvec(record).map_err(|source| CodecError::Encode {
        kind: T::KIND,
        source,
    })?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or(CodecError::Empty { kind: T::KIND })?;
    if version != T::VERSION {
        return Err(CodecError::Version {
            kind: T::KIND,
            found: version,
            expected: T::VERSION,
        });
    }
    postcard::from_bytes(body).map_err(|source| CodecError::Decode {
        kind: T::KIND,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Probe {
        a: u64,
        b: Option<String>,
    }
    impl Record for Probe {
        const KIND: &'static str = "probe";
        const VERSION: u8 = 3;
    }

    #[test]
    fn round_trip_and_version_refusal() {
        let p = Probe {
            a: 7,
            b: Some("x".into()),
        };
        let bytes = encode(&p).unwrap();
        assert_eq!(bytes[0], 3);
        assert_eq!(decode::<Probe>(&bytes).unwrap(), p);
        let mut newer = bytes.clone();
        newer[0] = 4;
        assert!(matches!(
            decode::<Probe>(&newer),
            Err(CodecError::Version { found: 4, .. })
        ));
        assert!(matches!(
            decode::<Probe>(&[]),
            Err(CodecError::Empty { .. })
        ));
        assert!(matches!(
            decode::<Probe>(&[3, 0xff]),
            Err(CodecError::Decode { .. })
        ));
    }
}
