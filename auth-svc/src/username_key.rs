//! The username key: the one rule by which usernames compare (uniqueness, login lookup, the
//! per-account login throttle). See [`crate::user`] for where it is used and how the database's
//! `users.username_key` column agrees with it.

use unicode_normalization::UnicodeNormalization;

/// The form in which usernames are compared (see the module docs of [`crate::user`]): NFKC (Unicode Standard
/// Annex #15), then Unicode lower case (`str::to_lowercase`, the Unicode default case
/// conversion), then NFKC again, since lower-casing can leave a string that is not in NFKC.
/// The per-account login limit's key and the value of `users.username_key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsernameKey(String);

impl UsernameKey {
    /// The key of `name`, any string (a login may type anything).
    pub fn of(name: &str) -> Self {
        let lower = name.nfkc().collect::<String>().to_lowercase();
        Self(lower.nfkc().collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another spelling of the same name is the same key: fullwidth letters, case, ligatures,
    /// compatibility characters, composed or combining sequences.
    #[test]
    fn spellings_of_one_name_share_one_key() {
        let key = |n: &str| UsernameKey::of(n);
        for same in ["ＡＬＩＣＥ", "alice", "Alice", "ａｌｉｃｅ", "ALICE", "Ａｌｉｃｅ"] {
            assert_eq!(key(same).as_str(), "alice", "{same:?}");
        }
        assert_eq!(key("ﬁona"), key("fiona"), "ligature");
        assert_eq!(key("\u{212A}elvin"), key("kelvin"), "KELVIN SIGN");
        assert_eq!(key("e\u{301}cole"), key("ÉCOLE"), "combining acute = precomposed");
        assert_eq!(key("Ｅ\u{301}ＣＯＬＥ"), key("école"), "fullwidth with a combining accent");
        assert_ne!(key("alice"), key("a1ice"));
        // Stable: the key of a key is itself.
        for name in ["ＡＬＩＣＥ", "ﬁona", "ǅemal", "\u{1E9E}tra\u{DF}e", "ΣΊΣΥΦΟΣ", "İstanbul"] {
            let k = key(name);
            assert_eq!(key(k.as_str()), k, "{name:?}");
        }
    }
}
