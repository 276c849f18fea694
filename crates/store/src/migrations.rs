//! The schema's migrations, embedded at build time (see build.rs), read as sqlx reads a
//! migrations directory: `<version>_<description>.up.sql` / `.down.sql` (or `.sql` alone), the
//! description with `_` as spaces, `-- no-transaction` on the first line to run outside one. The
//! checksums sqlx stores are of the SQL, so stores migrated before this change match.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::error::StoreResult;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// One backend's migration files: (file name, SQL).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded(&'static [(&'static str, &'static str)]);

pub(crate) const SQLITE: Embedded = Embedded(embedded::SQLITE);
pub(crate) const POSTGRES: Embedded = Embedded(embedded::POSTGRES);

impl Embedded {
    pub(crate) async fn migrator(self) -> StoreResult<Migrator> {
        Ok(Migrator::new(self).await?)
    }

    fn migrations(self) -> Result<Vec<Migration>, String> {
        let mut migrations = Vec::with_capacity(self.0.len());
        for &(file, sql) in self.0 {
            let Some((version, rest)) = file.split_once('_') else {
                return Err(format!(
                    "migration {file}: expected <version>_<description>.sql"
                ));
            };
            let version: i64 = version
                .parse()
                .map_err(|_| format!("migration {file}: the version is not an integer"))?;
            let kind = MigrationType::from_filename(rest);
            let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
            migrations.push(Migration::new(
                version,
                Cow::Owned(description),
                kind,
                Cow::Borrowed(sql),
                sql.starts_with("-- no-transaction"),
            ));
        }
        migrations.sort_by_key(|m| m.version);
        Ok(migrations)
    }
}

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move { self.migrations().map_err(BoxDynError::from) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_has_its_pair_and_versions_rise() {
        for backend in [SQLITE, POSTGRES] {
            let migrations = backend.migrations().unwrap();
            let ups: Vec<i64> = migrations
                .iter()
                .filter(|m| m.migration_type == MigrationType::ReversibleUp)
                .map(|m| m.version)
                .collect();
            let downs: Vec<i64> = migrations
                .iter()
                .filter(|m| m.migration_type == MigrationType::ReversibleDown)
                .map(|m| m.version)
                .collect();
            assert!(ups.len() >= 10, "{ups:?}");
            assert_eq!(ups, downs);
            assert!(ups.windows(2).all(|w| w[0] < w[1]), "{ups:?}");
        }
    }

    #[test]
    fn the_description_reads_as_sqlx_reads_a_directory() {
        let m = Embedded(&[("0002_queue_console.up.sql", "SELECT 1;")])
            .migrations()
            .unwrap();
        assert_eq!(m[0].version, 2);
        assert_eq!(m[0].description, "queue console");
        assert_eq!(m[0].migration_type, MigrationType::ReversibleUp);
        assert!(!m[0].no_tx);
    }
}
