//! SQL written once for both stores. A statement is text with `$N` placeholders (sqlx's SQLite
//! driver reads them too) over tables named alike in both schemas (PostgreSQL connections search
//! `ops, osp_metadata` first), with its arguments held as values; a row type decodes on both
//! because its column types do ([`Time`], [`JsonText`], [`TextList`]). Where the dialects truly
//! differ, a statement carries one text per dialect.
//!
//! Flows run on a [`Tx`] (a write transaction, `BEGIN IMMEDIATE` on SQLite) or a [`Db`] (reads
//! from the pool); both answer the same `fetch_*`/`execute` calls on either backend.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgPool, PgRow, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqlitePool, SqliteRow, SqliteTypeInfo, SqliteValueRef};
use sqlx::types::Json;
use sqlx::{Decode, Encode, FromRow, Postgres, Sqlite, Transaction, Type, encode::IsNull};

use crate::{StoreKind, StoreResult};

/// A point in time. PostgreSQL holds `timestamptz`; SQLite milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Time(pub DateTime<Utc>);

impl Time {
    fn millis(self) -> i64 {
        self.0.timestamp_millis()
    }
}

impl From<Time> for DateTime<Utc> {
    fn from(t: Time) -> Self {
        t.0
    }
}

impl Type<Postgres> for Time {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for Time {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Time)
    }
}

impl Encode<'_, Postgres> for Time {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for Time {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for Time {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let ms = <i64 as Decode<Sqlite>>::decode(value)?;
        DateTime::from_timestamp_millis(ms)
            .map(Time)
            .ok_or_else(|| format!("{ms} ms is out of the range of a time").into())
    }
}

impl<'q> Encode<'q, Sqlite> for Time {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode(self.millis(), args)
    }
}

/// JSON as its text. PostgreSQL holds `jsonb`, SQLite text; either way the text is decoded by the
/// caller, so that a value serde cannot read (nested too deep) fails its row alone, not the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonText(pub String);

impl JsonText {
    pub fn of(value: &serde_json::Value) -> Self {
        JsonText(value.to_string())
    }
}

fn jsonb() -> PgTypeInfo {
    <Json<()> as Type<Postgres>>::type_info()
}

impl Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        jsonb()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Json<()> as Type<Postgres>>::compatible(ty) || <String as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for JsonText {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let binary_jsonb = value.format() == PgValueFormat::Binary
            && *sqlx::ValueRef::type_info(&value) == jsonb();
        let mut bytes = value.as_bytes()?;
        if binary_jsonb {
            // jsonb's binary form is a version byte, then the text.
            match bytes.split_first() {
                Some((1, rest)) => bytes = rest,
                _ => return Err("unsupported jsonb format version".into()),
            }
        }
        Ok(JsonText(std::str::from_utf8(bytes)?.to_owned()))
    }
}

impl Encode<'_, Postgres> for JsonText {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.push(1);
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

impl Type<Sqlite> for JsonText {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for JsonText {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <String as Decode<Sqlite>>::decode(value).map(JsonText)
    }
}

impl<'q> Encode<'q, Sqlite> for JsonText {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.clone(), args)
    }
}

/// A list of text. PostgreSQL holds `text[]`; SQLite a JSON array as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TextList(pub Vec<String>);

impl Type<Postgres> for TextList {
    fn type_info() -> PgTypeInfo {
        <Vec<String> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Vec<String> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for TextList {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <Vec<String> as Decode<Postgres>>::decode(value).map(TextList)
    }
}

impl Encode<'_, Postgres> for TextList {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Vec<String> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for TextList {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for TextList {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(TextList(serde_json::from_str(text)?))
    }
}

impl<'q> Encode<'q, Sqlite> for TextList {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(serde_json::to_string(&self.0)?, args)
    }
}

/// One argument of a statement, by value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    SmallInt(Option<i32>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Time(Option<Time>),
    Json(Option<JsonText>),
    Texts(TextList),
}

macro_rules! arg_from {
    ($($t:ty => $variant:ident, $conv:expr;)*) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg::$variant(Some($conv(v)))
            }
        }
        impl From<Option<$t>> for Arg {
            fn from(v: Option<$t>) -> Self {
                Arg::$variant(v.map($conv))
            }
        }
    )*};
}

arg_from! {
    i64 => Int, |v| v;
    i32 => SmallInt, |v| v;
    f64 => Float, |v| v;
    bool => Bool, |v| v;
    String => Text, |v| v;
    &str => Text, str::to_owned;
    &String => Text, String::clone;
    Time => Time, |v| v;
    DateTime<Utc> => Time, Time;
    JsonText => Json, |v| v;
    &serde_json::Value => Json, JsonText::of;
}

impl From<TextList> for Arg {
    fn from(v: TextList) -> Self {
        Arg::Texts(v)
    }
}

impl From<&[String]> for Arg {
    fn from(v: &[String]) -> Self {
        Arg::Texts(TextList(v.to_vec()))
    }
}

/// A statement and its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pg: Cow<'static, str>,
    sqlite: Cow<'static, str>,
    args: Vec<Arg>,
}

/// A statement whose text is the same in both dialects.
pub(crate) fn stmt(sql: impl Into<Cow<'static, str>>) -> Stmt {
    let sql = sql.into();
    Stmt {
        pg: sql.clone(),
        sqlite: sql,
        args: Vec::new(),
    }
}

/// A statement written once per dialect (the arguments are still bound once).
pub(crate) fn dialects(
    pg: impl Into<Cow<'static, str>>,
    sqlite: impl Into<Cow<'static, str>>,
) -> Stmt {
    Stmt {
        pg: pg.into(),
        sqlite: sqlite.into(),
        args: Vec::new(),
    }
}

impl Stmt {
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }
}

macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::SmallInt(v) => q.bind(*v),
                Arg::Float(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_deref()),
                Arg::Time(v) => q.bind(*v),
                Arg::Json(v) => q.bind(v.as_ref()),
                Arg::Texts(v) => q.bind(v),
            };
        }
        q
    }};
}

/// A row type both backends decode.
pub(crate) trait AnyRow:
    for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

/// What the flows written once need of a backend: its pool, on which they begin transactions.
pub(crate) trait Backend: Send + Sync {
    fn db(&self) -> &Db;
}

/// A write transaction on either backend.
pub(crate) enum Tx {
    Pg(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// The pool of either backend, for reads outside a transaction.
#[derive(Clone)]
pub(crate) enum Db {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

macro_rules! executor_methods {
    ($recv:ty; $pg:pat => $pg_exec:expr, $sqlite:pat => $sqlite_exec:expr) => {
        #[allow(dead_code, reason = "the same calls on a transaction and on the pool; not every one is used on both")]
        pub async fn fetch_one<T: AnyRow>(self: $recv, s: Stmt) -> StoreResult<T> {
            Ok(match self {
                $pg => {
                    bind_args!(sqlx::query_as(&s.pg), &s.args)
                        .fetch_one($pg_exec)
                        .await?
                }
                $sqlite => {
                    bind_args!(sqlx::query_as(&s.sqlite), &s.args)
                        .fetch_one($sqlite_exec)
                        .await?
                }
            })
        }

        #[allow(dead_code, reason = "the same calls on a transaction and on the pool; not every one is used on both")]
        pub async fn fetch_optional<T: AnyRow>(self: $recv, s: Stmt) -> StoreResult<Option<T>> {
            Ok(match self {
                $pg => {
                    bind_args!(sqlx::query_as(&s.pg), &s.args)
                        .fetch_optional($pg_exec)
                        .await?
                }
                $sqlite => {
                    bind_args!(sqlx::query_as(&s.sqlite), &s.args)
                        .fetch_optional($sqlite_exec)
                        .await?
                }
            })
        }

        #[allow(dead_code, reason = "the same calls on a transaction and on the pool; not every one is used on both")]
        pub async fn fetch_all<T: AnyRow>(self: $recv, s: Stmt) -> StoreResult<Vec<T>> {
            Ok(match self {
                $pg => {
                    bind_args!(sqlx::query_as(&s.pg), &s.args)
                        .fetch_all($pg_exec)
                        .await?
                }
                $sqlite => {
                    bind_args!(sqlx::query_as(&s.sqlite), &s.args)
                        .fetch_all($sqlite_exec)
                        .await?
                }
            })
        }

        /// Answers the number of rows the statement changed.
        #[allow(dead_code, reason = "the same calls on a transaction and on the pool; not every one is used on both")]
        pub async fn execute(self: $recv, s: Stmt) -> StoreResult<u64> {
            Ok(match self {
                $pg => bind_args!(sqlx::query(&s.pg), &s.args)
                    .execute($pg_exec)
                    .await?
                    .rows_affected(),
                $sqlite => bind_args!(sqlx::query(&s.sqlite), &s.args)
                    .execute($sqlite_exec)
                    .await?
                    .rows_affected(),
            })
        }
    };
}

impl Tx {
    executor_methods!(&mut Self; Tx::Pg(tx) => &mut **tx, Tx::Sqlite(tx) => &mut **tx);

    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Pg(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub fn kind(&self) -> StoreKind {
        match self {
            Tx::Pg(_) => StoreKind::Postgres,
            Tx::Sqlite(_) => StoreKind::Sqlite,
        }
    }
}

impl Db {
    executor_methods!(&Self; Db::Pg(pool) => pool, Db::Sqlite(pool) => pool);

    /// A write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`): a deferred
    /// transaction that reads first (a foreign-key check is enough) fails at once with
    /// BUSY_SNAPSHOT instead of waiting its turn.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self {
            Db::Pg(pool) => Tx::Pg(pool.begin().await?),
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    pub fn kind(&self) -> StoreKind {
        match self {
            Db::Pg(_) => StoreKind::Postgres,
            Db::Sqlite(_) => StoreKind::Sqlite,
        }
    }
}

/// A row struct that both backends decode by column name: what `#[derive(sqlx::FromRow)]`
/// writes, without the sqlx-macros crate (see build.rs for why it is not in the tree).
macro_rules! row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$field_meta])* $field_vis $field: $ty),*
        }

        impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for $name
        where
            &'r str: sqlx::ColumnIndex<R>,
            $($ty: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,)*
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Ok($name {
                    $($field: row.try_get(stringify!($field))?),*
                })
            }
        }
    };
}
pub(crate) use row;
