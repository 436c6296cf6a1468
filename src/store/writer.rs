//! The one writer: a dedicated thread that owns the store's write
//! transactions, so no async worker thread ever blocks on a commit. Several
//! queued operations share one durable commit (group commit); if any of them
//! fails, the group is aborted and each operation is run again alone, so one
//! failure never takes another operation's changes with it.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

use super::Store;
use super::error::StoreError;
use super::tx::Tx;
use crate::domain::Millis;

type Op = Box<dyn FnMut(&mut Tx<'_>) -> Result<Box<dyn std::any::Any + Send>, StoreError> + Send>;

struct Request {
    now: Millis,
    op: Op,
    reply: oneshot::Sender<Result<Box<dyn std::any::Any + Send>, StoreError>>,
}

/// A handle to the writer thread. Cloning it is cheap; the thread ends when
/// the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
    store: Arc<Store>,
}

/// How many queued operations one commit may carry.
const GROUP_MAX: usize = 64;

impl Writer {
    pub fn start(store: Arc<Store>) -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let s = store.clone();
        thread::Builder::new()
            .name("orch-store-writer".into())
            .spawn(move || run(&s, rx))
            .expect("spawning the store writer thread");
        Self { tx, store }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Runs `op` in the writer thread. The operation may be run twice (once
    /// in a group, once alone) if another operation of its group fails, so
    /// it must only act through the transaction.
    pub async fn call<R: Send + 'static>(
        &self,
        now: Millis,
        mut op: impl FnMut(&mut Tx<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        let op: Op =
            Box::new(move |tx| op(tx).map(|r| Box::new(r) as Box<dyn std::any::Any + Send>));
        self.tx
            .send(Request { now, op, reply })
            .map_err(|_| StoreError::Db("the store writer has stopped".into()))?;
        let boxed = answer
            .await
            .map_err(|_| StoreError::Db("the store writer dropped a request".into()))??;
        boxed
            .downcast::<R>()
            .map(|b| *b)
            .map_err(|_| StoreError::Db("store writer returned the wrong type".into()))
    }
}

fn run(store: &Store, rx: mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        // One clock for the group: the latest `now` any caller passed.
        let now = group.iter().map(|r| r.now).max().unwrap_or_default();
        let grouped = if group.len() == 1 {
            None
        } else {
            store
                .write_many(now, group.len(), |tx, i| (group[i].op)(tx))
                .ok()
        };
        match grouped {
            Some(results) => {
                for (req, res) in group.into_iter().zip(results) {
                    let _ = req.reply.send(Ok(res));
                }
            }
            None => {
                for mut req in group {
                    let res = store.write(req.now, |tx| (req.op)(tx));
                    let _ = req.reply.send(res);
                }
            }
        }
    }
}
