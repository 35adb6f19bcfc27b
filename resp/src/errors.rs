//! Error replies, worded exactly as Redis 7 words them.
//!
//! Invariant: an `ErrorReply`'s text is valid UTF-8 with no `\r` or `\n` (Redis replaces
//! them with spaces so the reply stays one protocol line), and starts with an error code
//! word (`ERR`, `NOPROTO`, `WRONGPASS`, ...). Client-supplied bytes quoted in a message
//! are converted lossily to UTF-8 (Redis would echo raw bytes; RESP simple errors carry
//! text).

use std::fmt;

/// One error reply, without the leading `-` and trailing CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    text: String,
}

/// Client bytes as they appear inside a message.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Client bytes as C's `%.128s` shows them: up to the first NUL, at most 128 bytes.
fn shown_c128(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(bytes.len())
        .min(128);
    shown(&bytes[..end])
}

impl ErrorReply {
    /// An error with a Redis-style message: if `text` does not start with an error code
    /// of its own (`-CODE ...`), `ERR ` is prefixed, as Redis's `addReplyError` does.
    pub fn new(text: impl Into<String>) -> Self {
        let text: String = text.into();
        let text = match text.strip_prefix('-') {
            Some(coded) => coded.to_owned(),
            None => format!("ERR {text}"),
        };
        let text = text.replace(['\r', '\n'], " ");
        Self { text }
    }

    /// The reply text, e.g. `ERR syntax error`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `ERR syntax error`
    pub fn syntax() -> Self {
        Self::new("syntax error")
    }

    /// `ERR value is not an integer or out of range`
    pub fn not_integer() -> Self {
        Self::new("value is not an integer or out of range")
    }

    /// `ERR wrong number of arguments for '<name>' command`, with the command's lowercase
    /// full name (`client|setname` for subcommands).
    pub fn wrong_arity(full_name: &str) -> Self {
        Self::new(format!(
            "wrong number of arguments for '{full_name}' command"
        ))
    }

    /// `ERR unknown command '<name>', with args beginning with: '<a1>' '<a2>' ` — as
    /// Redis builds it: each argument quoted and followed by a space, stopping once the
    /// list reaches 128 bytes.
    pub fn unknown_command(name: &[u8], args: &[impl AsRef<[u8]>]) -> Self {
        let mut listed = String::new();
        for arg in args {
            if listed.len() >= 128 {
                break;
            }
            // sdscatprintf("'%.*s' ", 128 - len, arg): the argument itself is cut so the
            // list stays near 128 bytes.
            let room = 128 - listed.len();
            let arg = arg.as_ref();
            let end = arg
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(arg.len())
                .min(room);
            listed.push('\'');
            listed.push_str(&shown(&arg[..end]));
            listed.push_str("' ");
        }
        Self::new(format!(
            "unknown command '{}', with args beginning with: {listed}",
            shown_c128(name)
        ))
    }

    /// `ERR unknown subcommand '<sub>'. Try <CONTAINER> HELP.`
    pub fn unknown_subcommand(container: &str, sub: &[u8]) -> Self {
        Self::new(format!(
            "unknown subcommand '{}'. Try {} HELP.",
            shown_c128(sub),
            container.to_ascii_uppercase()
        ))
    }

    /// `ERR invalid expire time in '<name>' command`
    pub fn invalid_expire_time(name: &str) -> Self {
        Self::new(format!("invalid expire time in '{name}' command"))
    }

    /// `ERR DB index is out of range`
    pub fn db_index_out_of_range() -> Self {
        Self::new("DB index is out of range")
    }

    /// `NOPROTO unsupported protocol version`
    pub fn noproto() -> Self {
        Self::new("-NOPROTO unsupported protocol version")
    }

    /// `ERR Client names cannot contain spaces, newlines or special characters.`
    pub fn bad_client_name() -> Self {
        Self::new("Client names cannot contain spaces, newlines or special characters.")
    }

    /// `WRONGPASS invalid username-password pair or user is disabled.`
    pub fn wrongpass() -> Self {
        Self::new("-WRONGPASS invalid username-password pair or user is disabled.")
    }

    /// Shoal's limit on key length (Redis has none below 512 MB).
    pub fn key_too_long(len: usize) -> Self {
        Self::new(format!(
            "key is {len} bytes, longer than Shoal's limit of {} (MAX_KEY_LEN)",
            shoal_proto::limits::MAX_KEY_LEN
        ))
    }

    /// Shoal's limit on keys per command (Redis has none).
    pub fn too_many_keys(count: usize) -> Self {
        Self::new(format!(
            "{count} keys in one command, more than Shoal's limit of {} (MAX_BATCH_KEYS)",
            shoal_proto::limits::MAX_BATCH_KEYS
        ))
    }

    /// Quotes client bytes inside a message, e.g. for `Unsupported option <opt>`.
    pub fn with_arg(prefix: &str, arg: &[u8], suffix: &str) -> Self {
        Self::new(format!("{prefix}{}{suffix}", shown_c128(arg)))
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for ErrorReply {}

#[cfg(test)]
mod tests {
    use super::ErrorReply;

    #[test]
    fn prefixes_and_codes() {
        assert_eq!(ErrorReply::syntax().text(), "ERR syntax error");
        assert_eq!(
            ErrorReply::noproto().text(),
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(ErrorReply::new("a\r\nb").text(), "ERR a  b");
    }

    #[test]
    fn unknown_command_lists_args_like_redis() {
        let none: [&[u8]; 0] = [];
        assert_eq!(
            ErrorReply::unknown_command(b"foo", &none).text(),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            ErrorReply::unknown_command(b"foo", &[&b"a"[..], b"b c"]).text(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b c' "
        );
        // Long arguments are cut so the list stops near 128 bytes.
        let long = [b'x'; 200];
        let text = ErrorReply::unknown_command(b"foo", &[&long[..], b"next"])
            .text()
            .to_owned();
        let expected = format!(
            "ERR unknown command 'foo', with args beginning with: '{}' ",
            "x".repeat(128)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn unknown_subcommand_uppercases_container() {
        assert_eq!(
            ErrorReply::unknown_subcommand("client", b"foo").text(),
            "ERR unknown subcommand 'foo'. Try CLIENT HELP."
        );
    }
}
