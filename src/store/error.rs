//! The store's typed errors.

use std::path::Path;

use super::codec::CodecError;
use crate::domain::{IdError, JobStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    #[error("{path} is held by another orch process (redb locks the file for one process)")]
    Locked { path: String },
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the store file has schema version {found}; this orch understands up to {supported}")]
    NewerSchema { found: u64, supported: u64 },
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("job {job} attempt {attempt} is fenced off: the job is {status} at attempt {current}")]
    Fenced {
        job: u64,
        attempt: u32,
        status: JobStatus,
        current: u32,
    },
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

impl StoreError {
    pub(crate) fn open(path: &Path, e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                path: path.display().to_string(),
            },
            other => StoreError::Db(format!("{}: {other}", path.display())),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {
        $(impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(redb::Error::from(e).to_string())
            }
        })*
    };
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
