//! SSH public keys that name users: one OpenSSH public-key line, or an authorized_keys text, read
//! into what the store keeps (algorithm, the key's base64 blob, comment, SHA256 fingerprint), and
//! the events an SSH session leaves in the audit trail.
//!
//! Only the key types `ospdeck serve` can verify are accepted: russh is built without RSA, so
//! ssh-rsa is refused here rather than at a login that could never succeed; security-key types
//! (sk-*) and certificates are refused too.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use ssh_key::{HashAlg, PublicKey};

use super::error::InvalidInput;

/// The key types a key may have, in the order the refusal names them.
pub const ACCEPTED_ALGORITHMS: [&str; 4] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
];

/// The longest line read as a key: an accepted key with a long comment fits many times over; a
/// longer line is not a key of an accepted type.
pub const MAX_LINE: usize = 8192;
/// The longest comment kept (the rest of a line after the key).
pub const MAX_COMMENT: usize = 1024;

/// One public key, as parsed and fingerprinted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserKey {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`…
    pub algorithm: String,
    /// The key's blob in base64, as the second field of an OpenSSH line.
    pub public_key: String,
    /// The rest of the line after the key (often user@host); may be empty.
    pub comment: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// A key the store holds, and the user it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredKey {
    pub fingerprint: String,
    pub user: String,
    pub algorithm: String,
    pub public_key: String,
    pub comment: String,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

impl RegisteredKey {
    /// The key as an OpenSSH public-key line.
    pub fn openssh_line(&self) -> String {
        if self.comment.is_empty() {
            format!("{} {}", self.algorithm, self.public_key)
        } else {
            format!("{} {} {}", self.algorithm, self.public_key, self.comment)
        }
    }
}

/// One key line of an authorized_keys text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    pub key: UserKey,
    /// The options before the key type (`from="…",no-pty`), as written. ospdeck does not apply
    /// them: whoever imports is told so.
    pub options: Option<String>,
}

/// A line of an authorized_keys text that was not blank or a comment: its number (from 1) and
/// the key, or why it is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLine {
    pub line: usize,
    pub parsed: Result<AuthorizedKey, InvalidInput>,
}

impl UserKey {
    /// A key as russh hands it to a server (its comment is usually empty there).
    pub fn from_ssh_key(key: &PublicKey) -> Result<Self, InvalidInput> {
        let algorithm = key.algorithm();
        let algorithm = algorithm.as_str();
        check_algorithm(algorithm)?;
        let openssh = key.to_openssh().map_err(|e| {
            InvalidInput::new(format!("the {algorithm} key cannot be encoded: {e}"))
        })?;
        let public_key = openssh
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| InvalidInput::new(format!("the {algorithm} key encodes to nothing")))?
            .to_owned();
        Ok(Self {
            algorithm: algorithm.to_owned(),
            public_key,
            comment: key.comment().as_str_lossy().to_owned(),
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        })
    }
}

/// The refusal every unaccepted key type gets: one sentence naming the accepted ones.
fn check_algorithm(algorithm: &str) -> Result<(), InvalidInput> {
    if ACCEPTED_ALGORITHMS.contains(&algorithm) {
        return Ok(());
    }
    Err(InvalidInput::new(format!(
        "key type {algorithm} is not accepted: use ssh-ed25519 or ecdsa-sha2-nistp256, \
         ecdsa-sha2-nistp384 or ecdsa-sha2-nistp521 (ssh-rsa, security keys (sk-*), DSA and \
         certificates cannot sign in to ospdeck serve)"
    )))
}

/// Whether a field is a key type rather than options: sshd tells them apart the same way (no
/// authorized_keys option begins like a key type).
fn is_key_type(field: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-", "rsa-sha2-", "x509v3-"]
        .iter()
        .any(|p| field.starts_with(p))
        || field.contains("@openssh.com")
}

/// Splits `options rest` where options end at the first whitespace outside double quotes (a
/// quoted value such as `command="a b"` may hold spaces; `\"` inside quotes is a quote).
fn split_options(line: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                return Some((&line[..i], line[i..].trim_start()));
            }
            _ => {}
        }
    }
    None
}

const EXPECTED: &str = "expected `TYPE BASE64 [COMMENT]`, e.g. `ssh-ed25519 AAAAC3Nza… user@host` \
                        (the contents of a .pub file)";

/// One OpenSSH public-key line: `TYPE BASE64 [COMMENT]`, e.g. the contents of `id_ed25519.pub`.
/// A line with authorized_keys options before the key is refused: ospdeck would not apply them
/// (use [`parse_authorized_keys`], which reports them).
pub fn parse_public_key(line: &str) -> Result<UserKey, InvalidInput> {
    let parsed = parse_line(line)?;
    match parsed.options {
        None => Ok(parsed.key),
        Some(options) => Err(InvalidInput::new(format!(
            "the line carries authorized_keys options ({}) that ospdeck does not apply: give the \
             key alone ({EXPECTED})",
            shorten(&options)
        ))),
    }
}

/// Every key line of an authorized_keys text (blank lines and `#` comments skipped), each with
/// its line number and its key or the reason it is not one.
pub fn parse_authorized_keys(text: &str) -> Vec<KeyLine> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|(i, l)| KeyLine {
            line: i + 1,
            parsed: parse_line(l),
        })
        .collect()
}

/// One line, options allowed.
fn parse_line(line: &str) -> Result<AuthorizedKey, InvalidInput> {
    let line = line.trim();
    if line.is_empty() {
        return Err(InvalidInput::new(format!("no key: {EXPECTED}")));
    }
    if line.len() > MAX_LINE {
        return Err(InvalidInput::new(format!(
            "the line is {} bytes long, more than the {MAX_LINE} a key of an accepted type takes",
            line.len()
        )));
    }
    let first = line.split_whitespace().next().unwrap_or_default();
    let (options, rest) = if is_key_type(first) {
        (None, line)
    } else {
        match split_options(line) {
            Some((options, rest)) if rest.split_whitespace().next().is_some_and(is_key_type) => {
                (Some(options.to_owned()), rest)
            }
            _ => {
                return Err(InvalidInput::new(format!(
                    "not an OpenSSH public key ({}): {EXPECTED}",
                    shorten(line)
                )));
            }
        }
    };
    let mut fields = rest.split_whitespace();
    let algorithm = fields.next().unwrap_or_default();
    check_algorithm(algorithm)?;
    let Some(data) = fields.next() else {
        return Err(InvalidInput::new(format!(
            "the {algorithm} key has no key data: {EXPECTED}"
        )));
    };
    // Comments are kept as one line of single spaces (tabs and runs of blanks collapse).
    let comment = fields.collect::<Vec<_>>().join(" ");
    if comment.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            "the key's comment holds control characters",
        ));
    }
    if comment.chars().count() > MAX_COMMENT {
        return Err(InvalidInput::new(format!(
            "the key's comment is longer than {MAX_COMMENT} characters"
        )));
    }
    let parsed = PublicKey::from_openssh(&format!("{algorithm} {data}")).map_err(|e| {
        InvalidInput::new(format!(
            "the {algorithm} key's data is not a valid {algorithm} key (bad base64, cut short, \
             or another type's key): {e}"
        ))
    })?;
    let mut key = UserKey::from_ssh_key(&parsed)?;
    key.comment = comment;
    Ok(AuthorizedKey { key, options })
}

/// Quoted input in a message: the first 40 characters.
fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    format!("{out:?}")
}

/// A fingerprint as `ssh-keygen -lf` and `ospdeck user key list` print it: `SHA256:` and the
/// 43 characters of the digest's unpadded base64.
pub fn check_fingerprint(fingerprint: &str) -> Result<(), InvalidInput> {
    let ok = fingerprint.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    });
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(format!(
            "invalid fingerprint {}: SHA256: and 43 base64 characters, as `ssh-keygen -lf KEY.pub` \
             or `ospdeck user key list` print it",
            shorten(fingerprint)
        )))
    }
}

/// What happened to an SSH session, as its audit row's action names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SessionAction {
    #[serde(rename = "ssh.login")]
    Login,
    #[serde(rename = "ssh.logout")]
    Logout,
    #[serde(rename = "ssh.refused")]
    Refused,
}

impl SessionAction {
    pub const ALL: [SessionAction; 3] = [Self::Login, Self::Logout, Self::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "ssh.login",
            Self::Logout => "ssh.logout",
            Self::Refused => "ssh.refused",
        }
    }
}

impl fmt::Display for SessionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionAction {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(format!(
                    "unknown session action {s:?}: ssh.login, ssh.logout or ssh.refused"
                ))
            })
    }
}

/// The longest address an event names (an IPv6 address with port and zone fits).
pub const MAX_ADDRESS: usize = 255;
/// The largest detail an event keeps, as JSON text.
pub const MAX_DETAIL: usize = 4096;

/// One event of an SSH session for the audit trail: its entity is the peer's address.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    pub action: SessionAction,
    /// The peer, e.g. `203.0.113.7:50122`.
    pub address: String,
    /// Anything worth keeping: the key's fingerprint, the reason of a refusal, the session's
    /// length. An object (or null).
    pub detail: serde_json::Value,
}

impl SessionEvent {
    pub fn check(&self) -> Result<(), InvalidInput> {
        if self.address.is_empty()
            || self.address.len() > MAX_ADDRESS
            || self.address.chars().any(char::is_control)
        {
            return Err(InvalidInput::new(format!(
                "invalid session address {}: 1 to {MAX_ADDRESS} printable characters",
                shorten(&self.address)
            )));
        }
        if !(self.detail.is_object() || self.detail.is_null()) {
            return Err(InvalidInput::new(
                "a session event's detail is a JSON object",
            ));
        }
        let size = self.detail.to_string().len();
        if size > MAX_DETAIL {
            return Err(InvalidInput::new(format!(
                "a session event's detail is {size} bytes of JSON, more than {MAX_DETAIL}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated once with `ssh-keygen -t ed25519 -C alice@laptop` (and -t ecdsa -b 256/384/521,
    // -t rsa); each fingerprint is what `ssh-keygen -lf` printed for the .pub file.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL2MQjD10hI0GxMX2VVmCTPLBcKPR5vBSjCkCjiqieIT alice@laptop";
    const ED25519_FP: &str = "SHA256:kRCaadOjxOBXYtjHo3n4GXgFqUOY6rsBMJqOWWiVF0s";
    const P256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJpZLNWdlmigAWtaK5qyD4hXdDttqQoe1kQx2regmtH/9YYaBWleqUxGK+Ajdb6IaPlvyG57hpXGvL0fqP0zOAA= bob@ci";
    const P256_FP: &str = "SHA256:i5XtSzPTUAP1ND8ZeCz4k7Te9Fkf49iC25iwXu9CtT0";
    const P384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBKzz1nQ8AAPXSov8u1fzDnHVb19B3zvp4ya6WWFIIE1AD+l07M7NA+p4M4z1C+HZNG3+q8rIo/UKtatZXGRJAr8WNVMke9TwvTryyto2qYO0nOn/uPUJUb1vJxEkvCea/Q== p384";
    const P384_FP: &str = "SHA256:7/RCcnSs2K+pCtM+KQRB/SiN/AAjIxsppM7rXWPRhx4";
    const P521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAC/p3zfqCLZxAV3bMR7dbcWbGa+rtkMqLUAEZy0lD85bA6JXPmOXg562eYEAFrSNsjgZ4x5sp5lpAtPVueunrQvdwCiWluhas0QNhdIqygZE9PdwyNoYvsbN8LmSM/S8yjc0B9tH3ZkGfZdiU3uRGVFn6eEI7wtwf57MXzYjkhpEpHwAA==";
    const P521_FP: &str = "SHA256:OsjWnxb/fRxqddh3x+7HTlqsXG1UY8lI93lwDxlNkpU";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDBmHPL3MCFh+fU4lE3rVNAvgBIMLx8d9nLur+791GBOfShYCYVpq69NC50e9XgJ1jJCq1tO/lpyHoTP9xQiwPVZGN4X/qkJQYNkSvx6qn7Wv4rxNZVWMUDkBpTjEJs/SZs1ToEirPAqTPBbPRNRLvT/gd34TYM9ZTkayIQKqA1JrUwt0qXPxXxzjUndp9W82YK4/MgPRTCQCQvv1oHuCjz2qqeEb3gPCxntAziv5F1yqKcoOAB0cazrEenii9Hc5YYRhmVGqow48eIyvBcsnDBIAdsndOhicFM1JtfLvB0FBY+OomFYiAaoaYfOlztetw3iQQ8zDMqJwZwAJlXi/C5 rsa";
    // A security key's public half, built by hand (no hardware here): type, key, application.
    const SK: &str = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fAAAABHNzaDo= yubi";

    fn refusal(line: &str) -> String {
        match parse_public_key(line) {
            Ok(k) => panic!("{line:?} was accepted as {k:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn fingerprints_are_what_ssh_keygen_prints() {
        for (line, algorithm, fingerprint, comment) in [
            (ED25519, "ssh-ed25519", ED25519_FP, "alice@laptop"),
            (P256, "ecdsa-sha2-nistp256", P256_FP, "bob@ci"),
            (P384, "ecdsa-sha2-nistp384", P384_FP, "p384"),
            (P521, "ecdsa-sha2-nistp521", P521_FP, ""),
        ] {
            let key = parse_public_key(line).unwrap();
            assert_eq!(key.algorithm, algorithm);
            assert_eq!(key.fingerprint, fingerprint, "{algorithm}");
            assert_eq!(key.comment, comment);
            assert_eq!(line.split(' ').nth(1), Some(key.public_key.as_str()));
            check_fingerprint(&key.fingerprint).unwrap();
        }
    }

    #[test]
    fn a_registered_key_is_its_openssh_line_again() {
        let key = parse_public_key(ED25519).unwrap();
        let registered = RegisteredKey {
            fingerprint: key.fingerprint,
            user: "alice".into(),
            algorithm: key.algorithm,
            public_key: key.public_key,
            comment: key.comment,
            added_by: "root".into(),
            added_at: Utc::now(),
        };
        assert_eq!(registered.openssh_line(), ED25519);
    }

    #[test]
    fn comments_may_hold_spaces_and_hashes_and_the_line_may_have_crlf() {
        let line = format!("{}  my\tlaptop #2\r\n", &ED25519[..ED25519.len() - 13]);
        let key = parse_public_key(&line).unwrap();
        assert_eq!(key.comment, "my laptop #2");
        assert_eq!(key.fingerprint, ED25519_FP);
    }

    #[test]
    fn other_key_types_are_refused_in_one_sentence_naming_the_accepted() {
        for (line, ty) in [
            (RSA, "ssh-rsa"),
            (SK, "sk-ssh-ed25519@openssh.com"),
            (
                "ssh-dss AAAAB3NzaC1kc3MAAAABAQAAAAEBAAAAAQEAAAABAQ== old",
                "ssh-dss",
            ),
            (
                "ssh-ed25519-cert-v01@openssh.com AAAA x",
                "ssh-ed25519-cert-v01@openssh.com",
            ),
        ] {
            let e = refusal(line);
            assert!(
                e.starts_with(&format!("key type {ty} is not accepted: use ssh-ed25519")),
                "{e}"
            );
            assert!(
                e.contains("ecdsa-sha2-nistp521") && !e.contains('\n'),
                "{e}"
            );
        }
    }

    #[test]
    fn garbage_is_a_clear_error_never_a_panic() {
        let cut = &ED25519[..40];
        let swapped = format!("ecdsa-sha2-nistp256 {}", ED25519.split(' ').nth(1).unwrap());
        let long = format!("ssh-ed25519 {}", "A".repeat(MAX_LINE));
        let control = format!("{} a\u{1b}[31mb", &ED25519[..ED25519.len() - 13]);
        for (line, wanted) in [
            ("", "no key"),
            ("   ", "no key"),
            ("hello world", "not an OpenSSH public key"),
            ("hello", "not an OpenSSH public key"),
            ("ssh-ed25519", "has no key data"),
            (
                "ssh-ed25519 !!!notbase64!!! x",
                "not a valid ssh-ed25519 key",
            ),
            ("ssh-ed25519 AAAA", "not a valid ssh-ed25519 key"),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fAAAA",
                "not a valid",
            ),
            (cut, "not a valid ssh-ed25519 key"),
            (swapped.as_str(), "not a valid ecdsa-sha2-nistp256 key"),
            (long.as_str(), "bytes long"),
            (control.as_str(), "control characters"),
            ("ssh-ed25519 \u{0}\u{1}\u{2}", "not a valid"),
        ] {
            let e = refusal(line);
            assert!(e.contains(wanted), "{line:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // Every prefix of a good line, and bytes flipped in its data, are refused or parse.
        for n in 0..ED25519.len() {
            let _ = parse_public_key(&ED25519[..n]);
        }
        let mut bytes = P256.as_bytes().to_vec();
        for i in 20..bytes.len() {
            let was = bytes[i];
            bytes[i] = b'/';
            let _ = parse_public_key(&String::from_utf8_lossy(&bytes));
            bytes[i] = was;
        }
    }

    #[test]
    fn a_single_key_line_with_options_is_refused_with_the_reason() {
        let e = refusal(&format!("no-pty {ED25519}"));
        assert!(e.contains("options") && e.contains("no-pty"), "{e}");
    }

    #[test]
    fn authorized_keys_lines_are_numbered_and_options_kept_apart() {
        let text = format!(
            "# team keys\n\n{ED25519}\nfrom=\"10.0.0.0/8,192.168.1.1\",command=\"echo a b\",no-pty {P256}\n\
             {RSA}\n   # indented comment\nrestrict {P521}\nnonsense here\n"
        );
        let lines = parse_authorized_keys(&text);
        let numbers: Vec<usize> = lines.iter().map(|l| l.line).collect();
        assert_eq!(numbers, vec![3, 4, 5, 7, 8]);
        let ok = |i: usize| lines[i].parsed.as_ref().unwrap();
        assert_eq!(ok(0).key.fingerprint, ED25519_FP);
        assert_eq!(ok(0).options, None);
        assert_eq!(ok(1).key.fingerprint, P256_FP);
        assert_eq!(ok(1).key.comment, "bob@ci");
        assert_eq!(
            ok(1).options.as_deref(),
            Some("from=\"10.0.0.0/8,192.168.1.1\",command=\"echo a b\",no-pty")
        );
        assert!(
            lines[2]
                .parsed
                .as_ref()
                .unwrap_err()
                .0
                .contains("ssh-rsa is not accepted")
        );
        assert_eq!(ok(3).options.as_deref(), Some("restrict"));
        assert_eq!(ok(3).key.fingerprint, P521_FP);
        assert!(
            lines[4]
                .parsed
                .as_ref()
                .unwrap_err()
                .0
                .contains("not an OpenSSH public key")
        );
        assert!(parse_authorized_keys("").is_empty());
        assert!(parse_authorized_keys("# nothing\n\n").is_empty());
    }

    #[test]
    fn fingerprints_are_checked_by_form() {
        check_fingerprint(ED25519_FP).unwrap();
        for bad in [
            "",
            "SHA256:",
            "kRCaadOjxOBXYtjHo3n4GXgFqUOY6rsBMJqOWWiVF0s",
            "MD5:aa:bb",
            "SHA256:kRCaadOjxOBXYtjHo3n4GXgFqUOY6rsBMJqOWWiVF0s=",
            "SHA256:kRCaadOjxOBXYtjHo3n4GXgFqUOY6rsBMJqOWWiVF0!",
        ] {
            assert!(check_fingerprint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn session_events_are_bounded_and_named() {
        for a in SessionAction::ALL {
            assert_eq!(a.as_str().parse::<SessionAction>().unwrap(), a);
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert!("ssh.other".parse::<SessionAction>().is_err());
        let event = |address: &str, detail: serde_json::Value| SessionEvent {
            action: SessionAction::Login,
            address: address.to_owned(),
            detail,
        };
        event(
            "203.0.113.7:50122",
            serde_json::json!({"fingerprint": ED25519_FP}),
        )
        .check()
        .unwrap();
        event("[::1]:22", serde_json::Value::Null).check().unwrap();
        assert!(event("", serde_json::Value::Null).check().is_err());
        assert!(event("a\nb", serde_json::Value::Null).check().is_err());
        assert!(event("x", serde_json::json!([1])).check().is_err());
        assert!(
            event("x", serde_json::json!({"a": "b".repeat(MAX_DETAIL)}))
                .check()
                .is_err()
        );
    }
}
