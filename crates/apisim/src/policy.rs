//! A small static authentication and authorization policy: which bearer tokens belong to which
//! users, and which users and groups may do what. Loaded with
//! [`ServerConfig::with_policy`](crate::ServerConfig::with_policy) (or `apisim serve --policy FILE`),
//! it makes apisim check every request the way kube-apiserver's authentication and RBAC filters do
//! (401 without a known token, 403 with upstream's message when no rule allows the request), and
//! serves the TokenReview, SubjectAccessReview and SelfSubjectAccessReview APIs from it. Without a
//! policy apisim checks nothing and serves none of these.
//!
//! The file (YAML or JSON):
//!
//! ```yaml
//! tokens:                      # bearer token -> user
//!   - token: alice-token
//!     user: alice              # the username
//!     uid: "1001"              # optional
//!     groups: [readers]        # optional; every user is also in system:authenticated
//! rules:                       # a request is allowed when one rule matches it
//!   - users: [alice]           # the rule's subjects: these users ...
//!     groups: [readers]        # ... and members of these groups ("*": anyone authenticated)
//!     verbs: [get, list, watch]            # "*": any verb
//!     apiGroups: [packages.glasskube.dev]  # "" is the core group; "*": any
//!     resources: [packagerepositories]     # "plural" or "plural/subresource"; "*": any
//!     namespaces: [default]    # optional; absent, empty or "*": every namespace and the
//!                              # cluster scope (a ClusterRoleBinding); else only requests
//!                              # inside these namespaces (RoleBindings)
//!     resourceNames: [glasskube]  # optional; absent or empty: any object; else only requests
//!                                 # naming one of these objects (never a LIST or WATCH)
//! ```
//!
//! Like kube-apiserver's default roles, any authenticated user may read discovery, OpenAPI,
//! `/version` and the health endpoints, and create SelfSubjectAccessReviews; apisim's control
//! API (`/apisim/*`) is never checked. There is no anonymous user: a request without a known
//! token is 401 whatever it asks for.

use std::fmt;

use serde::Deserialize;

use crate::errors::Error;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// A loaded policy (see the [module documentation](self) for the file format).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Bearer tokens and the users they authenticate.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Rules; a request is allowed when one of them matches.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One bearer token and its user. `Debug` does not show the token.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The bearer token.
    pub token: String,
    /// The username.
    pub user: String,
    /// The user's uid (may be empty).
    #[serde(default)]
    pub uid: String,
    /// The user's groups (`system:authenticated` is added).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("token", &"<redacted>")
            .field("user", &"<redacted>")
            .field("groups", &self.groups)
            .finish()
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("tokens", &self.tokens.len())
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// One rule: its subjects and what they may do. `*` is a wildcard in every list.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Users the rule applies to.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups the rule applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`).
    pub verbs: Vec<String>,
    /// API groups (`""` is the core group).
    pub api_groups: Vec<String>,
    /// Resources: `plural` or `plural/subresource`.
    pub resources: Vec<String>,
    /// Namespaces; empty (or `*`) is every namespace and the cluster scope.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Object names; empty is any object.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// An authenticated user, as a token names it (or as a SubjectAccessReview asks about it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct User {
    /// The username.
    pub username: String,
    /// The uid.
    pub uid: String,
    /// The groups, `system:authenticated` included.
    pub groups: Vec<String>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("username", &"<redacted>")
            .field("groups", &self.groups)
            .finish()
    }
}

/// What a resource request asks: upstream's authorization attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// The verb.
    pub verb: &'a str,
    /// The API group (`""` for the core group).
    pub group: &'a str,
    /// The resource (plural).
    pub resource: &'a str,
    /// The subresource, if any.
    pub subresource: Option<&'a str>,
    /// The namespace; `None` at the cluster scope.
    pub namespace: Option<&'a str>,
    /// The object's name, if the request names one.
    pub name: Option<&'a str>,
}

fn any_is(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

impl Rule {
    fn applies_to(&self, user: &User) -> bool {
        any_is(&self.users, &user.username) || user.groups.iter().any(|g| any_is(&self.groups, g))
    }

    fn allows(&self, a: &Attributes<'_>) -> bool {
        let resource_matches = self.resources.iter().any(|r| {
            r == "*"
                || match a.subresource.filter(|s| !s.is_empty()) {
                    None => r == a.resource,
                    Some(sub) => r
                        .split_once('/')
                        .is_some_and(|(res, s)| res == a.resource && s == sub),
                }
        });
        let all_namespaces = self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == "*");
        let namespace_matches = all_namespaces
            || a.namespace
                .filter(|n| !n.is_empty())
                .is_some_and(|ns| self.namespaces.iter().any(|n| n == ns));
        let name_matches = self.resource_names.is_empty()
            || a.name
                .filter(|n| !n.is_empty())
                .is_some_and(|name| self.resource_names.iter().any(|n| n == name));
        any_is(&self.verbs, a.verb)
            && any_is(&self.api_groups, a.group)
            && resource_matches
            && namespace_matches
            && name_matches
    }
}

impl Policy {
    /// Reads a policy file's text (YAML, or JSON).
    pub fn from_yaml(text: &str) -> Result<Policy, Error> {
        let policy: Policy =
            serde_yaml::from_str(text).map_err(|e| Error::Policy(e.to_string()))?;
        for (i, t) in policy.tokens.iter().enumerate() {
            if t.token.is_empty() || t.user.is_empty() {
                return Err(Error::Policy(format!(
                    "tokens[{i}]: token and user must not be empty"
                )));
            }
        }
        Ok(policy)
    }

    /// The user a bearer token authenticates (with `system:authenticated` among its groups).
    pub fn authenticate(&self, token: &str) -> Option<User> {
        let entry = self.tokens.iter().find(|t| t.token == token)?;
        let mut groups = entry.groups.clone();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        Some(User {
            username: entry.user.clone(),
            uid: entry.uid.clone(),
            groups,
        })
    }

    /// The index of the first rule that allows `user` the request, if any.
    pub fn allowing_rule(&self, user: &User, a: &Attributes<'_>) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| r.applies_to(user) && r.allows(a))
    }

    /// Whether some rule allows `user` the request.
    pub fn allows(&self, user: &User, a: &Attributes<'_>) -> bool {
        self.allowing_rule(user, a).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
tokens:
  - {token: t-alice, user: alice, uid: "1", groups: [readers]}
  - {token: t-bob, user: bob}
rules:
  - groups: [readers]
    verbs: [get, list, watch]
    apiGroups: [packages.glasskube.dev]
    resources: [packagerepositories]
  - users: [bob]
    verbs: ["*"]
    apiGroups: ["*"]
    resources: [packages, "packagerepositories/status"]
    namespaces: [team-a]
  - users: [bob]
    verbs: [get]
    apiGroups: [packages.glasskube.dev]
    resources: [packagerepositories]
    resourceNames: [glasskube]
"#;

    fn attrs<'a>(verb: &'a str, resource: &'a str, ns: Option<&'a str>) -> Attributes<'a> {
        Attributes {
            verb,
            group: "packages.glasskube.dev",
            resource,
            namespace: ns,
            ..Attributes::default()
        }
    }

    #[test]
    fn tokens_and_rules() {
        let p = Policy::from_yaml(POLICY).unwrap();
        assert!(p.authenticate("nope").is_none());
        assert!(p.authenticate("").is_none());
        let alice = p.authenticate("t-alice").unwrap();
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.groups, ["readers", AUTHENTICATED_GROUP]);
        let bob = p.authenticate("t-bob").unwrap();

        let list = attrs("list", "packagerepositories", None);
        assert!(p.allows(&alice, &list));
        assert!(!p.allows(&bob, &list));
        assert!(!p.allows(&alice, &attrs("delete", "packagerepositories", None)));
        assert!(!p.allows(&alice, &attrs("list", "packages", Some("x"))));
        let other_group = Attributes {
            group: "apps",
            ..list
        };
        assert!(!p.allows(&alice, &other_group));

        // Namespaces: only inside team-a, never at the cluster scope.
        assert!(p.allows(&bob, &attrs("delete", "packages", Some("team-a"))));
        assert!(!p.allows(&bob, &attrs("list", "packages", Some("team-b"))));
        assert!(!p.allows(&bob, &attrs("list", "packages", None)));

        // Subresources are named as such.
        let status = Attributes {
            subresource: Some("status"),
            namespace: Some("team-a"),
            ..attrs("update", "packagerepositories", None)
        };
        assert!(p.allows(&bob, &status));
        assert!(!p.allows(
            &alice,
            &Attributes {
                verb: "get",
                ..status
            }
        ));
        assert!(p.allows(
            &alice,
            &Attributes {
                subresource: None,
                verb: "get",
                ..status
            }
        ));

        // resourceNames: that object only, and no LIST.
        let get = |name| Attributes {
            name: Some(name),
            ..attrs("get", "packagerepositories", None)
        };
        assert!(p.allows(&bob, &get("glasskube")));
        assert!(!p.allows(&bob, &get("other")));
        assert_eq!(p.allowing_rule(&bob, &get("glasskube")), Some(2));
    }

    #[test]
    fn bad_files_are_errors_and_debug_shows_no_secret() {
        assert!(Policy::from_yaml("tokens: [{token: x}]").is_err());
        assert!(Policy::from_yaml("rules: [{verbs: [get]}]").is_err());
        assert!(Policy::from_yaml("nonsense: 1").is_err());
        assert!(Policy::from_yaml("tokens: [{token: '', user: u}]").is_err());
        let p = Policy::from_yaml(POLICY).unwrap();
        let shown = format!("{p:?} {:?} {:?}", p.tokens, p.authenticate("t-alice"));
        assert!(
            !shown.contains("t-alice") && !shown.contains("alice\""),
            "{shown}"
        );
    }
}
