//! Users on Postgres.

use async_trait::async_trait;

use super::rows::*;
use super::tx::PgTx;
use crate::model::UserId;
use crate::proto::types;
use crate::store::{StoreResult, UserStore};

#[async_trait]
impl UserStore for PgTx {
    async fn users(&mut self, ids_: &[UserId]) -> StoreResult<Vec<types::User>> {
        let rows = self
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1)"),
                &[&ids(ids_, UserId::get)],
            )
            .await?;
        Ok(rows.iter().map(user_from).collect())
    }

    async fn user_ids_by_username(&mut self, names: &[String]) -> StoreResult<Vec<UserId>> {
        let rows = self
            .query("SELECT id FROM users WHERE username = ANY($1)", &[&names])
            .await?;
        Ok(rows
            .iter()
            .map(|r| UserId(r.get::<_, i64>(0) as u64))
            .collect())
    }

    async fn upsert_users(&mut self, users: &[types::User]) -> StoreResult<()> {
        // Rows are locked in the order written: in id order, two batches
        // over the same users wait for each other instead of deadlocking.
        let mut sorted: Vec<&types::User> = users.iter().collect();
        sorted.sort_by_key(|u| u.id);
        let users = sorted;
        let id: Vec<i64> = users.iter().map(|u| u.id as i64).collect();
        let name: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        let username: Vec<Option<&str>> = users.iter().map(|u| u.username.as_deref()).collect();
        let photo_id: Vec<Option<i64>> = users
            .iter()
            .map(|u| u.photo.as_ref().map(|p| p.file_id as i64))
            .collect();
        let preview: Vec<Option<&[u8]>> = users
            .iter()
            .map(|u| u.photo.as_ref().map(|p| p.preview.as_slice()))
            .collect();
        let bot: Vec<bool> = users.iter().map(|u| u.bot).collect();
        let icon: Vec<Option<i64>> = users.iter().map(|u| u.icon.map(|v| v as i64)).collect();
        let color: Vec<Option<i64>> = users.iter().map(|u| u.color.map(i64::from)).collect();
        self.execute(
            "INSERT INTO users (id, name, username, photo_file_id, photo_preview, bot, icon, color)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bytea[],
                                  $6::boolean[], $7::bigint[], $8::bigint[])
             ORDER BY 1
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, username = EXCLUDED.username,
                 photo_file_id = EXCLUDED.photo_file_id, photo_preview = EXCLUDED.photo_preview,
                 bot = EXCLUDED.bot, icon = EXCLUDED.icon, color = EXCLUDED.color",
            &[
                &id, &name, &username, &photo_id, &preview, &bot, &icon, &color,
            ],
        )
        .await?;
        Ok(())
    }

    async fn insert_user_if_absent(&mut self, id: UserId, name: &str) -> StoreResult<()> {
        self.execute(
            "INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[&(id.get() as i64), &name],
        )
        .await?;
        Ok(())
    }
}
