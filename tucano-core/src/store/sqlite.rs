//! `SqliteStore`: the controller's default durable store, one SQLite file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, params};

use super::{Store, StoreError, StoreOp, StoredState};

/// Stores services, instances and workers as JSON rows in a SQLite database (WAL mode).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tucano_core::store::{SqliteStore, Store};
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(dir.path().join("tucano.db"))?;
/// assert!(store.load().await?.services.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

fn sql_error(error: rusqlite::Error) -> StoreError {
    StoreError(error.to_string())
}

fn json_error(error: serde_json::Error) -> StoreError {
    StoreError(format!("bad stored JSON: {error}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let connection = Connection::open(path).map_err(sql_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, body TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS instances (
                     id TEXT PRIMARY KEY, service TEXT NOT NULL, body TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS instances_by_service ON instances (service);
                 CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, body TEXT NOT NULL);",
            )
            .map_err(sql_error)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn with_connection<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| StoreError(format!("store task failed: {e}")))?
    }
}

fn read_table<T: serde::de::DeserializeOwned>(
    connection: &Connection,
    sql: &str,
) -> Result<Vec<T>, StoreError> {
    let mut statement = connection.prepare(sql).map_err(sql_error)?;
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(sql_error)?;
    let mut items = Vec::new();
    for body in rows {
        items.push(serde_json::from_str(&body.map_err(sql_error)?).map_err(json_error)?);
    }
    Ok(items)
}

#[async_trait]
impl Store for SqliteStore {
    async fn load(&self) -> Result<StoredState, StoreError> {
        self.with_connection(|connection| {
            Ok(StoredState {
                services: read_table(connection, "SELECT body FROM services ORDER BY name")?,
                instances: read_table(connection, "SELECT body FROM instances ORDER BY id")?,
                workers: read_table(connection, "SELECT body FROM workers ORDER BY id")?,
            })
        })
        .await
    }

    async fn apply(&self, batch: Vec<StoreOp>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.with_connection(move |connection| {
            let tx = connection.transaction().map_err(sql_error)?;
            for op in batch {
                apply_op(&tx, op)?;
            }
            tx.commit().map_err(sql_error)
        })
        .await
    }
}

/// Applies one operation within a transaction.
fn apply_op(tx: &Transaction<'_>, op: StoreOp) -> Result<(), StoreError> {
    match op {
        StoreOp::PutService(service) => {
            let body = serde_json::to_string(&service).map_err(json_error)?;
            tx.execute(
                "INSERT OR REPLACE INTO services (name, body) VALUES (?1, ?2)",
                params![service.spec.name.as_str(), body],
            )
        }
        StoreOp::DeleteService(name) => tx
            .execute(
                "DELETE FROM instances WHERE service = ?1",
                params![name.as_str()],
            )
            .and_then(|_| {
                tx.execute(
                    "DELETE FROM services WHERE name = ?1",
                    params![name.as_str()],
                )
            }),
        StoreOp::PutInstance(instance) => {
            let body = serde_json::to_string(&instance).map_err(json_error)?;
            tx.execute(
                "INSERT OR REPLACE INTO instances (id, service, body) VALUES (?1, ?2, ?3)",
                params![instance.id.to_string(), instance.service.as_str(), body],
            )
        }
        StoreOp::DeleteInstance(id) => tx.execute(
            "DELETE FROM instances WHERE id = ?1",
            params![id.to_string()],
        ),
        StoreOp::PutWorker(worker) => {
            let body = serde_json::to_string(&worker).map_err(json_error)?;
            tx.execute(
                "INSERT OR REPLACE INTO workers (id, body) VALUES (?1, ?2)",
                params![worker.id.as_str(), body],
            )
        }
        StoreOp::DeleteWorker(id) => {
            tx.execute("DELETE FROM workers WHERE id = ?1", params![id.as_str()])
        }
        StoreOp::ReplaceAll(state) => {
            tx.execute_batch("DELETE FROM instances; DELETE FROM services; DELETE FROM workers;")
                .map_err(sql_error)?;
            let puts = state
                .services
                .into_iter()
                .map(|service| StoreOp::PutService(Box::new(service)))
                .chain(state.instances.into_iter().map(StoreOp::PutInstance))
                .chain(state.workers.into_iter().map(StoreOp::PutWorker));
            for put in puts {
                apply_op(tx, put)?;
            }
            return Ok(());
        }
    }
    .map(|_| ())
    .map_err(sql_error)
}
