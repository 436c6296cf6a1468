//! The `meta` table: schema version, id sequences, boot id and the gate
//! switches the claim indexes were built with.

use redb::{ReadableTable, Table};

use super::SCHEMA_VERSION;
use super::codec::{self, Record};
use super::error::StoreError;
use super::tx::Tx;
use crate::gates::GateConfig;

impl Record for GateConfig {
    const KIND: &'static str = "gate config";
    const VERSION: u8 = 1;
}

pub(crate) fn get_u64(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<u64>, StoreError> {
    match t.get(name)? {
        None => Ok(None),
        Some(v) => {
            let b: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| StoreError::Db(format!("meta {name} is not a u64")))?;
            Ok(Some(u64::from_be_bytes(b)))
        }
    }
}

pub(crate) fn put_u64(
    t: &mut Table<'_, &'static str, &'static [u8]>,
    name: &str,
    v: u64,
) -> Result<(), StoreError> {
    t.insert(name, v.to_be_bytes().as_slice())?;
    Ok(())
}

/// Runs at open: refuses a newer schema, stamps a new file, and rebuilds the
/// claim indexes if the gate switches changed since they were built.
pub(crate) fn prepare(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    match get_u64(&tx.meta, "schema_version")? {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        Some(_) => {}
        None => put_u64(&mut tx.meta, "schema_version", SCHEMA_VERSION)?,
    }
    let recorded: Option<GateConfig> = match tx.meta.get("gate_config")? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    };
    if recorded.as_ref() != Some(tx.gates) {
        if recorded.is_some() {
            tracing::info!(
                "gate switches changed since the last start; rebuilding the claim indexes"
            );
            tx.rebuild_claim_indexes()?;
        }
        let bytes = codec::encode(tx.gates)?;
        tx.meta.insert("gate_config", bytes.as_slice())?;
    }
    Ok(())
}

/// The schema version recorded in the file.
pub(crate) fn schema_version(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64, StoreError> {
    Ok(get_u64(t, "schema_version")?.unwrap_or(0))
}
