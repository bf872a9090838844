//! Numeric uid → user name, through NSS (`getpwuid_r`), with a bounded cache.

use nix::unistd::{Uid, User};

use super::cache::BoundedCache;

/// How many uids to remember; hosts rarely run processes as more than a few dozen.
const USER_CACHE_CAPACITY: usize = 1024;

/// First uid of ordinary login accounts (Debian's `UID_MIN` in /etc/login.defs).
const FIRST_LOGIN_UID: u32 = 1000;
/// `nobody`.
const OVERFLOW_UID: u32 = 65534;

/// Resolves and remembers user names, including "no such user", and uids by name.
#[derive(Debug)]
pub(crate) struct UserNames {
    cache: BoundedCache<u32, Option<String>>,
    uids: BoundedCache<String, Option<u32>>,
}

impl UserNames {
    pub(crate) fn new() -> Self {
        Self {
            cache: BoundedCache::new(USER_CACHE_CAPACITY),
            uids: BoundedCache::new(USER_CACHE_CAPACITY),
        }
    }

    /// The OCSF `user` an account name (and uid, when the source said it) stands for: the uid
    /// looked up by name when unknown and `exists`; a name with no passwd entry keeps no uid.
    pub(crate) fn named(&mut self, name: &str, uid: Option<u32>, exists: bool) -> vigil_ocsf::User {
        let uid = match uid {
            Some(uid) => Some(uid),
            None if exists && !name.is_empty() => match self.uids.get(name) {
                Some(uid) => *uid,
                None => match User::from_name(name) {
                    Ok(user) => {
                        let uid = user.map(|u| u.uid.as_raw());
                        self.uids.insert(name.to_owned(), uid);
                        uid
                    }
                    Err(_) => None,
                },
            },
            None => None,
        };
        match uid {
            Some(uid) => vigil_ocsf::User {
                name: Some(name.to_owned())
                    .filter(|n| !n.is_empty())
                    .or_else(|| self.user(uid).name),
                uid: uid.to_string(),
                type_id: user_type_id(uid),
            },
            None => vigil_ocsf::User {
                name: Some(name.to_owned()),
                uid: String::new(),
                type_id: 0,
            },
        }
    }

    /// The OCSF `user` for `uid`; `name` is `None` when the uid has no passwd entry.
    pub(crate) fn user(&mut self, uid: u32) -> vigil_ocsf::User {
        let name = match self.cache.get(&uid) {
            Some(name) => name.clone(),
            None => match User::from_uid(Uid::from_raw(uid)) {
                Ok(user) => {
                    let name = user.map(|u| u.name);
                    self.cache.insert(uid, name.clone());
                    name
                }
                // A transient NSS failure: answer without a name, ask again next time.
                Err(_) => None,
            },
        };
        vigil_ocsf::User {
            name,
            uid: uid.to_string(),
            type_id: user_type_id(uid),
        }
    }
}

/// OCSF `user.type_id`: 2 Admin for root, 3 System for service accounts, 1 User otherwise.
pub(crate) fn user_type_id(uid: u32) -> u8 {
    match uid {
        0 => 2,
        OVERFLOW_UID => 3,
        uid if uid < FIRST_LOGIN_UID => 3,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_to_root_admin() {
        let mut users = UserNames::new();
        let root = users.user(0);
        assert_eq!(root.name.as_deref(), Some("root"));
        assert_eq!(root.uid, "0");
        assert_eq!(root.type_id, 2);
    }

    #[test]
    fn names_resolve_to_uids_unless_the_account_does_not_exist() {
        let mut users = UserNames::new();
        let root = users.named("root", None, true);
        assert_eq!((root.uid.as_str(), root.type_id), ("0", 2));
        let invalid = users.named("root", None, false);
        assert_eq!((invalid.uid.as_str(), invalid.type_id), ("", 0));
        let ghost = users.named("vigil-no-such-user", None, true);
        assert_eq!(ghost.name.as_deref(), Some("vigil-no-such-user"));
        assert_eq!(ghost.uid, "");
        let told = users.named("alice", Some(1000), true);
        assert_eq!((told.uid.as_str(), told.type_id), ("1000", 1));
        let nameless = users.named("", Some(0), true);
        assert_eq!(nameless.name.as_deref(), Some("root"));
    }

    #[test]
    fn unknown_uid_has_no_name_but_keeps_uid() {
        let mut users = UserNames::new();
        let ghost = users.user(3_999_999_999);
        assert_eq!(ghost.name, None);
        assert_eq!(ghost.uid, "3999999999");
        assert_eq!(ghost.type_id, 1);
        assert_eq!(user_type_id(100), 3);
    }
}
