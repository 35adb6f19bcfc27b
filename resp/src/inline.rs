//! Inline (telnet) command lines split into arguments with Redis's quoting rules.
//!
//! This is a faithful port of Redis's `sdssplitargs`, including its C-string quirks:
//! - words are separated by blanks (`isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`);
//! - `"double quotes"` understand `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>`;
//! - `'single quotes'` understand only `\'`;
//! - a quote may open in the middle of a word (`a"b c"` is the one word `ab c`), but a
//!   closing quote must be followed by a blank or the end of the line;
//! - an unterminated quote is an error (Redis: "unbalanced quotes");
//! - a NUL byte ends the line, as it ends a C string.
//!
//! Invariant: words without quotes are zero-copy slices of the line; quoted words are
//! freshly built because unescaping changes their bytes.

use bytes::{Bytes, BytesMut};

/// The line had an unterminated quote or a closing quote followed by a non-blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnbalancedQuotes;

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits one inline command line (without its line terminator) into arguments.
///
/// `max_args` bounds the result: `Ok(None)` means the line holds more words than that.
pub fn split_args(line: &Bytes, max_args: usize) -> Result<Option<Vec<Bytes>>, UnbalancedQuotes> {
    // C-string view: index past the end (or at a NUL) reads as 0.
    let at = |i: usize| -> u8 { line.get(i).copied().unwrap_or(0) };
    let mut args = Vec::new();
    let mut p = 0usize;
    loop {
        while at(p) != 0 && is_c_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(Some(args));
        }
        if args.len() == max_args {
            return Ok(None);
        }
        let start = p;
        let mut quoted = false;
        let mut current = BytesMut::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = at(p);
            if in_double {
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        current.extend_from_slice(&[hi * 16 + lo]);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    let escaped = match at(p + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    };
                    current.extend_from_slice(&[escaped]);
                    p += 2;
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(UnbalancedQuotes);
                } else {
                    current.extend_from_slice(&[c]);
                    p += 1;
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    current.extend_from_slice(b"'");
                    p += 2;
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(UnbalancedQuotes);
                } else {
                    current.extend_from_slice(&[c]);
                    p += 1;
                }
            } else {
                match c {
                    // Redis ends an unquoted word on these only (not on \v or \f).
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            p += 1;
                        }
                        break;
                    }
                    b'"' => {
                        quoted = true;
                        in_double = true;
                        p += 1;
                    }
                    b'\'' => {
                        quoted = true;
                        in_single = true;
                        p += 1;
                    }
                    _ => {
                        current.extend_from_slice(&[c]);
                        p += 1;
                    }
                }
            }
        }
        if quoted {
            args.push(current.freeze());
        } else {
            // Unquoted: the word is exactly its bytes in the line, so share them.
            let end = start + current.len();
            debug_assert_eq!(&line[start..end], &current[..]);
            args.push(line.slice(start..end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
        let line = Bytes::copy_from_slice(s);
        split_args(&line, 1000).map(|v| v.unwrap().into_iter().map(|b| b.to_vec()).collect())
    }

    fn words(v: &[&[u8]]) -> Vec<Vec<u8>> {
        v.iter().map(|w| w.to_vec()).collect()
    }

    #[test]
    fn plain_words_and_blanks() {
        assert_eq!(split(b"set  k\tv").unwrap(), words(&[b"set", b"k", b"v"]));
        assert_eq!(split(b"   ").unwrap(), words(&[]));
        assert_eq!(split(b"").unwrap(), words(&[]));
        assert_eq!(split(b"a\x0bb").unwrap(), words(&[b"a\x0bb"]));
        assert_eq!(split(b"\x0b a").unwrap(), words(&[b"a"]));
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(
            split(br#"set "hello world" "\x41\n\r\t\b\a\q\"""#).unwrap(),
            words(&[b"set", b"hello world", b"A\n\r\t\x08\x07q\""])
        );
        // \x without two hex digits is an ordinary escape of 'x'.
        assert_eq!(split(br#""\xZZ""#).unwrap(), words(&[b"xZZ"]));
        assert_eq!(split(br#""""#).unwrap(), words(&[b""]));
        assert_eq!(split(br#"a"b c"  d"#).unwrap(), words(&[b"ab c", b"d"]));
    }

    #[test]
    fn single_quotes() {
        assert_eq!(split(br"'it\'s' '\n'").unwrap(), words(&[b"it's", b"\\n"]));
    }

    #[test]
    fn unbalanced_quotes() {
        assert_eq!(split(br#"get "abc"#), Err(UnbalancedQuotes));
        assert_eq!(split(br#"get 'abc"#), Err(UnbalancedQuotes));
        assert_eq!(split(br#"get "abc"def"#), Err(UnbalancedQuotes));
        assert_eq!(split(br#"get 'a'b"#), Err(UnbalancedQuotes));
        assert_eq!(split(b"get \"a\\"), Err(UnbalancedQuotes));
    }

    #[test]
    fn nul_ends_the_line_like_a_c_string() {
        assert_eq!(split(b"get a\0b c").unwrap(), words(&[b"get", b"a"]));
        assert_eq!(split(b"get \"a\0\""), Err(UnbalancedQuotes));
    }

    #[test]
    fn unquoted_words_share_the_line() {
        let line = Bytes::from_static(b"get key");
        let args = split_args(&line, 10).unwrap().unwrap();
        assert_eq!(args[1].as_ptr(), line[4..].as_ptr());
    }

    #[test]
    fn word_count_is_bounded() {
        let line = Bytes::from_static(b"a b c");
        assert_eq!(split_args(&line, 2).unwrap(), None);
        assert_eq!(split_args(&line, 3).unwrap().unwrap().len(), 3);
    }
}
