//! The settings that bound what each caller may do: live invites per group
//! and the per-user rates of the calls that write or fan out. Each rate is
//! `<calls>/<duration>` (`500/10s`: bursts of 500, 50 a second kept up), or
//! `off`.

use clap::Args;

use super::values::parse_duration;
use crate::domain::limits::{Rate, Rates};

#[derive(Clone, Debug, Args)]
pub struct LimitSettings {
    /// Live (unexpired, not used up) invites a group may have at once;
    /// CreateChatInvite past it fails with FAILED_PRECONDITION.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_MAX_INVITES_PER_GROUP",
        default_value_t = 100
    )]
    pub max_invites_per_group: usize,
    /// SendMessage per user.
    #[arg(long, global = true, env = "OSMIUM_RATE_SEND", default_value = "500/10s", value_parser = parse_rate)]
    pub rate_send: Rate,
    /// CreateChat per user (and a direct chat's creation by SetDraft or
    /// ChangeNotificationPreferences before its first message).
    #[arg(long, global = true, env = "OSMIUM_RATE_CREATE_CHAT", default_value = "30/1m", value_parser = parse_rate)]
    pub rate_create_chat: Rate,
    /// AddChatMember per user.
    #[arg(long, global = true, env = "OSMIUM_RATE_ADD_MEMBER", default_value = "100/1m", value_parser = parse_rate)]
    pub rate_add_member: Rate,
    /// CreateChatInvite per user.
    #[arg(long, global = true, env = "OSMIUM_RATE_CREATE_INVITE", default_value = "30/1m", value_parser = parse_rate)]
    pub rate_create_invite: Rate,
    /// UseInvite per user.
    #[arg(long, global = true, env = "OSMIUM_RATE_USE_INVITE", default_value = "30/1m", value_parser = parse_rate)]
    pub rate_use_invite: Rate,
    /// SetTyping per user.
    #[arg(long, global = true, env = "OSMIUM_RATE_TYPING", default_value = "5/1s", value_parser = parse_rate)]
    pub rate_typing: Rate,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let rates = Rates::default();
        Self {
            max_invites_per_group: 100,
            rate_send: rates.send,
            rate_create_chat: rates.create_chat,
            rate_add_member: rates.add_member,
            rate_create_invite: rates.create_invite,
            rate_use_invite: rates.use_invite,
            rate_typing: rates.typing,
        }
    }
}

impl LimitSettings {
    /// The default cap with every rate off: for benchmarks, which measure
    /// the service's capacity, not its limiter.
    pub fn without_rates() -> Self {
        Self {
            rate_send: Rate::OFF,
            rate_create_chat: Rate::OFF,
            rate_add_member: Rate::OFF,
            rate_create_invite: Rate::OFF,
            rate_use_invite: Rate::OFF,
            rate_typing: Rate::OFF,
            ..Self::default()
        }
    }

    pub fn rates(&self) -> Rates {
        Rates {
            send: self.rate_send,
            create_chat: self.rate_create_chat,
            add_member: self.rate_add_member,
            create_invite: self.rate_create_invite,
            use_invite: self.rate_use_invite,
            typing: self.rate_typing,
        }
    }
}

/// `<calls>/<duration>` (`50/1s`, `30/1m`), or `off` for no limit.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(Rate::OFF);
    }
    let (calls, per) = text.split_once('/').ok_or_else(|| {
        format!("{text:?}: write a rate as <calls>/<duration>, e.g. 50/1s, or off")
    })?;
    let calls: u32 = calls
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {calls:?} is not a number of calls"))?;
    let per = parse_duration(per)?;
    if calls == 0 || per.is_zero() {
        return Err(format!(
            "{text:?}: a rate needs calls and a duration; use off for no limit"
        ));
    }
    Ok(Rate::new(calls, per))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_read_as_calls_per_duration_or_off() {
        assert_eq!(
            parse_rate("50/1s"),
            Ok(Rate::new(50, Duration::from_secs(1)))
        );
        assert_eq!(
            parse_rate(" 30/1m "),
            Ok(Rate::new(30, Duration::from_secs(60)))
        );
        assert_eq!(parse_rate("off"), Ok(Rate::OFF));
        assert!(parse_rate("50").is_err());
        assert!(parse_rate("0/1s").is_err());
        assert!(parse_rate("5/0s").is_err());
        assert!(parse_rate("x/1s").is_err());
    }

    #[test]
    fn defaults_read_back_as_written() {
        let rates = LimitSettings::default().rates();
        assert_eq!(rates, Rates::default());
        assert_eq!(rates.send.to_string(), "500/10s");
        assert_eq!(
            parse_rate(&rates.create_chat.to_string()),
            Ok(rates.create_chat)
        );
    }
}
