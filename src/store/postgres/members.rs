//! Memberships on Postgres.

use async_trait::async_trait;

use tokio_postgres::types::ToSql;

use super::rows::*;
use super::tx::PgTx;
use crate::model::{ChatId, MemberRow, UserId};
use crate::store::{ConversationRange, MemberStore, StoreResult};

#[async_trait]
impl MemberStore for PgTx {
    async fn member(
        &mut self,
        chat: ChatId,
        user: UserId,
        lock: bool,
    ) -> StoreResult<Option<MemberRow>> {
        let sql = format!(
            "{MEMBER_SELECT} WHERE m.chat_id = $1 AND m.user_id = $2{}",
            if lock { " FOR UPDATE OF m" } else { "" }
        );
        let rows = self
            .query(&sql, &[&(chat.get() as i64), &(user.get() as i64)])
            .await?;
        Ok(rows.first().map(member_from))
    }

    async fn members(&mut self, chat: ChatId) -> StoreResult<Vec<MemberRow>> {
        let rows = self
            .query(
                &format!("{MEMBER_SELECT} WHERE m.chat_id = $1 ORDER BY m.joined, m.user_id"),
                &[&(chat.get() as i64)],
            )
            .await?;
        Ok(rows.iter().map(member_from).collect())
    }

    async fn members_of(&mut self, chats: &[ChatId]) -> StoreResult<Vec<(ChatId, UserId)>> {
        let rows = self
            .query(
                "SELECT chat_id, user_id FROM members WHERE chat_id = ANY($1)
                 ORDER BY chat_id, joined, user_id",
                &[&ids(chats, ChatId::get)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    ChatId(r.get::<_, i64>(0) as u64),
                    UserId(r.get::<_, i64>(1) as u64),
                )
            })
            .collect())
    }

    /// One statement, so a new group's roster is refreshed once, not once
    /// per member.
    async fn insert_members(&mut self, members: &[MemberRow]) -> StoreResult<()> {
        fn column<T>(members: &[MemberRow], f: impl Fn(&MemberRow) -> T) -> Vec<T> {
            members.iter().map(f).collect()
        }
        self.execute(
            "INSERT INTO members (chat_id, user_id, joined, sort_key, last_read, read_seq,
                                  skipped, mentions, draft, notif)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::bigint[], $6::bigint[], $7::int[], $8::int[],
                                  $9::text[], $10::smallint[])
             ON CONFLICT DO NOTHING",
            &[
                &column(members, |m| m.chat_id.get() as i64),
                &column(members, |m| m.user_id.get() as i64),
                &column(members, |m| m.joined as i64),
                &column(members, |m| m.sort_key as i64),
                &column(members, |m| m.last_read as i64),
                &column(members, |m| m.read_seq as i64),
                &column(members, |m| m.skipped as i32),
                &column(members, |m| m.mentions as i32),
                &column(members, |m| m.draft.clone()),
                &column(members, |m| m.notif as i16),
            ],
        )
        .await?;
        Ok(())
    }

    async fn remove_member(&mut self, chat: ChatId, user: UserId) -> StoreResult<()> {
        self.execute(
            "DELETE FROM members WHERE chat_id = $1 AND user_id = $2",
            &[&(chat.get() as i64), &(user.get() as i64)],
        )
        .await?;
        Ok(())
    }

    async fn update_member(&mut self, m: &MemberRow) -> StoreResult<()> {
        self.execute(
            "UPDATE members SET draft = $3, notif = $4 WHERE chat_id = $1 AND user_id = $2",
            &[
                &(m.chat_id.get() as i64),
                &(m.user_id.get() as i64),
                &m.draft,
                &(m.notif as i16),
            ],
        )
        .await?;
        Ok(())
    }

    async fn conversations(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<MemberRow>> {
        let before = range.before.map_or(i64::MAX, clamp);
        let after = range.after.map_or(0, clamp);
        let rows = self
            .query(
                &format!(
                    "{MEMBER_SELECT}
                     WHERE m.user_id = $1 AND m.sort_key < $2 AND m.sort_key > $3
                     ORDER BY m.sort_key DESC LIMIT $4"
                ),
                &[&(user.get() as i64), &before, &after, &(range.limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(member_from).collect())
    }
}

pub(super) const INSERT_MEMBER: &str = "INSERT INTO members (chat_id, user_id, joined, sort_key, last_read, read_seq, skipped, mentions, draft, notif)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";

pub(super) fn member_params<'a>(m: &MemberRow) -> Vec<Box<dyn ToSql + Sync + Send + 'a>> {
    vec![
        Box::new(m.chat_id.get() as i64),
        Box::new(m.user_id.get() as i64),
        Box::new(m.joined as i64),
        Box::new(m.sort_key as i64),
        Box::new(m.last_read as i64),
        Box::new(m.read_seq as i64),
        Box::new(m.skipped as i32),
        Box::new(m.mentions as i32),
        Box::new(m.draft.clone()),
        Box::new(m.notif as i16),
    ]
}
