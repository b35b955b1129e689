//! The config scanner: bytes to tokens, with fastd v22's lexical rules (docs/config.md §1.2).

use super::error::{LocatedKind, Pos};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Every keyword of fastd v22, plus the fastd-privsep extension keywords
/// (`address`, `gateway`, `masquerade`, `out`, `redirect`, `via`), sorted.
const KEYWORDS: &[&str] = &[
    "address",
    "addresses",
    "any",
    "as",
    "async",
    "auto",
    "bind",
    "capabilities",
    "cipher",
    "connect",
    "debug",
    "debug2",
    "default",
    "disestablish",
    "down",
    "drop",
    "early",
    "error",
    "establish",
    "fatal",
    "float",
    "force",
    "forward",
    "from",
    "gateway",
    "group",
    "handshakes",
    "hide",
    "include",
    "info",
    "interface",
    "ip",
    "ipv4",
    "ipv6",
    "key",
    "l2tp",
    "level",
    "limit",
    "log",
    "mac",
    "mark",
    "masquerade",
    "method",
    "mode",
    "mtu",
    "multitap",
    "no",
    "offload",
    "on",
    "out",
    "packet",
    "peer",
    "peers",
    "persist",
    "pmtu",
    "port",
    "post-down",
    "pre-up",
    "protocol",
    "redirect",
    "remote",
    "secret",
    "secure",
    "socket",
    "status",
    "stderr",
    "sync",
    "syslog",
    "tap",
    "to",
    "tun",
    "up",
    "use",
    "user",
    "verbose",
    "verify",
    "via",
    "warn",
    "yes",
];

/// Maximum length of an interface name after `%` in a scoped IPv6 address (IFNAMSIZ - 1).
const IFNAMSIZ_MAX: usize = 15;

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A keyword from the list (fastd v22 plus the extension keywords).
    Keyword(&'static str),
    /// A string, escapes resolved.
    Str(Vec<u8>),
    /// A number (saturated at `u64::MAX`).
    Uint(u64),
    /// A dotted IPv4 address.
    Addr4(Ipv4Addr),
    /// A bracketed IPv6 address.
    Addr6(Ipv6Addr),
    /// A bracketed IPv6 address with `%ifname`.
    Addr6Scoped(Ipv6Addr, Vec<u8>),
    /// Extension: `<addr4>/<len>` or `[addr6]/<len>` (a syntax error in fastd).
    Prefix(std::net::IpAddr, u64),
    /// `;`
    Semicolon,
    /// `:`
    Colon,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// End of the file.
    Eof,
}

impl Tok {
    /// How the token is named in "expected ..." details.
    pub fn describe(&self) -> String {
        match self {
            Tok::Keyword(k) => format!("`{k}'"),
            Tok::Str(_) => "a string".into(),
            Tok::Uint(_) => "a number".into(),
            Tok::Addr4(_) => "an IPv4 address".into(),
            Tok::Addr6(_) | Tok::Addr6Scoped(..) => "an IPv6 address".into(),
            Tok::Prefix(..) => "an address prefix".into(),
            Tok::Semicolon => "`;'".into(),
            Tok::Colon => "`:'".into(),
            Tok::LBrace => "`{'".into(),
            Tok::RBrace => "`}'".into(),
            Tok::Eof => "end of file".into(),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its first byte (for `Eof`: fastd's end-of-file position, §1.3).
    pub pos: Pos,
}

/// A scanner error: fastd's message, position and a detail for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// fastd's message.
    pub kind: LocatedKind,
    /// Where.
    pub pos: Pos,
    /// What was wrong, in words.
    pub detail: String,
}

/// Scans a whole file. The result holds the tokens up to the first scanner error (which
/// is then the last item), or up to and including `Eof`. The parser reports a scanner
/// error only when it reaches it, as fastd does.
pub fn tokenize(input: &[u8]) -> (Vec<Token>, Option<LexError>) {
    let mut lx = Lexer {
        s: input,
        i: 0,
        line: 1,
        col: 1,
        last: Pos { line: 1, col: 1 },
    };
    let mut out = Vec::new();
    loop {
        match lx.next_token() {
            Ok(t) => {
                let eof = t.tok == Tok::Eof;
                out.push(t);
                if eof {
                    return (out, None);
                }
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
    /// Position of the last byte or token start the scanner looked at (for `Eof`).
    last: Pos,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    /// The bytes scanned since `start` (always in bounds: `start <= self.i <= len`).
    fn since(&self, start: usize) -> &[u8] {
        self.s.get(start..self.i).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.i + n).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        if b == b'\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(b)
    }

    fn err(kind: LocatedKind, pos: Pos, detail: impl Into<String>) -> LexError {
        LexError {
            kind,
            pos,
            detail: detail.into(),
        }
    }

    /// Skips whitespace and comments. fastd's end-of-file position is the start of the
    /// last skipped unit: one whitespace byte, or a whole comment (a line comment
    /// including its newline) [bin: `mtu 1400 # abc\n` is reported at 1:10].
    fn skip(&mut self) -> Result<(), LexError> {
        loop {
            let unit = self.pos();
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => {
                    self.bump();
                }
                Some(b'#') => self.skip_line(),
                Some(b'/') if self.peek_at(1) == Some(b'/') => self.skip_line(),
                Some(b'/') if self.peek_at(1) == Some(b'*') => {
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(Self::err(
                                    LocatedKind::UnterminatedComment,
                                    unit,
                                    "block comment opened here is not closed by `*/'",
                                ))
                            }
                            Some(b'*') if self.peek() == Some(b'/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
            self.last = unit;
        }
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.bump() {
            if b == b'\n' {
                break;
            }
        }
    }

    /// The token separation rule: after a word, string, number or address, the next byte
    /// must be whitespace, a comment start, `; : { }` or the end of the file.
    fn check_separated(&self, what: &str) -> Result<(), LexError> {
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b'#' | b'/' | b';' | b':' | b'{' | b'}') => {
                Ok(())
            }
            Some(b) => Err(Self::err(
                LocatedKind::Syntax,
                self.pos(),
                format!("unexpected {} directly after {what}", show_byte(b)),
            )),
        }
    }

    fn next_token(&mut self) -> Result<Token, LexError> {
        self.skip()?;
        let pos = self.pos();
        let Some(b) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                pos: self.last,
            });
        };
        self.last = pos;
        let tok = match b {
            b';' | b':' | b'{' | b'}' => {
                self.bump();
                match b {
                    b';' => Tok::Semicolon,
                    b':' => Tok::Colon,
                    b'{' => Tok::LBrace,
                    _ => Tok::RBrace,
                }
            }
            b'"' => {
                let t = self.string(pos)?;
                self.check_separated("a string")?;
                t
            }
            b'[' => {
                let t = self.ipv6(pos)?;
                let t = self.maybe_prefix(t, pos)?;
                self.check_separated("an IPv6 address")?;
                t
            }
            b'0'..=b'9' => {
                let t = self.number(pos)?;
                let t = self.maybe_prefix(t, pos)?;
                self.check_separated("a number or address")?;
                t
            }
            b'a'..=b'z' => {
                let start = self.i;
                while self.peek().is_some_and(is_word) {
                    self.bump();
                }
                let word = self.since(start);
                let kw = KEYWORDS
                    .binary_search_by(|k| k.as_bytes().cmp(word))
                    .ok()
                    .and_then(|i| KEYWORDS.get(i).copied());
                match kw {
                    Some(k) => {
                        self.check_separated("a keyword")?;
                        Tok::Keyword(k)
                    }
                    None => {
                        return Err(Self::err(
                            LocatedKind::Syntax,
                            pos,
                            format!(
                                "unknown word `{}' (bare words must be keywords; names, paths and keys go in double quotes)",
                                String::from_utf8_lossy(word)
                            ),
                        ))
                    }
                }
            }
            b'/' => {
                return Err(Self::err(
                    LocatedKind::Syntax,
                    pos,
                    "a single `/' is not a comment (use `#', `//' or `/* */')",
                ))
            }
            other => {
                return Err(Self::err(
                    LocatedKind::Syntax,
                    pos,
                    format!("unexpected {}", show_byte(other)),
                ))
            }
        };
        Ok(Token { tok, pos })
    }

    fn string(&mut self, start: Pos) -> Result<Tok, LexError> {
        self.bump();
        let mut v = Vec::new();
        loop {
            match self.bump() {
                None => {
                    return Err(Self::err(
                        LocatedKind::UnterminatedString,
                        start,
                        "string opened here has no closing `\"'",
                    ))
                }
                Some(b'"') => return Ok(Tok::Str(v)),
                Some(b'\\') => match self.bump() {
                    None => {
                        return Err(Self::err(
                            LocatedKind::UnterminatedString,
                            start,
                            "string opened here has no closing `\"'",
                        ))
                    }
                    Some(b'\n') => {}
                    Some(c) => v.push(c),
                },
                Some(c) => v.push(c),
            }
        }
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, LexError> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.bump();
        }
        if self.peek() == Some(b'.') {
            while self.peek().is_some_and(|b| b.is_ascii_digit() || b == b'.') {
                self.bump();
            }
            let text = self.since(start);
            return parse_ipv4(text).map(Tok::Addr4).ok_or_else(|| {
                Self::err(
                    LocatedKind::Syntax,
                    pos,
                    format!(
                        "invalid IPv4 address `{}' (four decimal octets 0..255, no leading zeros)",
                        String::from_utf8_lossy(text)
                    ),
                )
            });
        }
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric()) {
            self.bump();
        }
        let text = self.since(start);
        parse_c_uint(text).map(Tok::Uint).ok_or_else(|| {
            Self::err(
                LocatedKind::Syntax,
                pos,
                format!(
                    "invalid number `{}' (a leading 0 means octal, 0x hexadecimal)",
                    String::from_utf8_lossy(text)
                ),
            )
        })
    }

    fn ipv6(&mut self, pos: Pos) -> Result<Tok, LexError> {
        let bad = |d: &str| Self::err(LocatedKind::Syntax, pos, d.to_owned());
        self.bump();
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_hexdigit() || b == b':')
        {
            self.bump();
        }
        let addr_text = self.since(start);
        let addr = std::str::from_utf8(addr_text)
            .ok()
            .and_then(|t| t.parse::<Ipv6Addr>().ok());
        let invalid = "invalid IPv6 address in brackets (hex digits and `:' only, optionally `%ifname' inside the brackets)";
        match self.peek() {
            Some(b']') => {
                self.bump();
                addr.map(Tok::Addr6).ok_or_else(|| bad(invalid))
            }
            Some(b'%') => {
                self.bump();
                let mut ifname = Vec::new();
                loop {
                    match self.bump() {
                        None => return Err(bad(invalid)),
                        Some(b']') => break,
                        Some(b'\\') => match self.bump() {
                            None => return Err(bad(invalid)),
                            Some(c) => ifname.push(c),
                        },
                        Some(c) => ifname.push(c),
                    }
                }
                if ifname.len() > IFNAMSIZ_MAX {
                    return Err(bad("interface name after `%' is longer than 15 bytes"));
                }
                addr.map(|a| Tok::Addr6Scoped(a, ifname))
                    .ok_or_else(|| bad(invalid))
            }
            _ => Err(bad(invalid)),
        }
    }

    /// Extension: `<addr>/<len>` (used by `interface address` and `masquerade from`).
    fn maybe_prefix(&mut self, t: Tok, pos: Pos) -> Result<Tok, LexError> {
        let addr = match &t {
            Tok::Addr4(a) => std::net::IpAddr::V4(*a),
            Tok::Addr6(a) => std::net::IpAddr::V6(*a),
            _ => return Ok(t),
        };
        if self.peek() != Some(b'/') || !self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            return Ok(t);
        }
        self.bump();
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric()) {
            self.bump();
        }
        let text = self.since(start);
        let len = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| {
                Self::err(
                    LocatedKind::Syntax,
                    pos,
                    "invalid prefix length (decimal number after `/')",
                )
            })?;
        Ok(Tok::Prefix(addr, len))
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("character `{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// glibc `inet_pton(AF_INET)`: exactly four decimal octets, no leading zeros.
fn parse_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    let s = std::str::from_utf8(text).ok()?;
    let mut octets = [0u8; 4];
    let mut n = 0;
    for part in s.split('.') {
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.starts_with('0')) {
            return None;
        }
        let v: u16 = part.parse().ok()?;
        let slot = octets.get_mut(n)?;
        *slot = u8::try_from(v).ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(octets))
}

/// C `strtoull(s, &end, 0)` that must consume the whole token; saturates at `u64::MAX`.
pub(crate) fn parse_c_uint(text: &[u8]) -> Option<u64> {
    let (digits, radix) = match text {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        [b'0', rest @ ..] if !rest.is_empty() => (rest, 8),
        _ => (text, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    let mut saturated = false;
    for &d in digits {
        let x = (d as char).to_digit(radix)?;
        match v
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(x)))
        {
            Some(n) => v = n,
            None => saturated = true,
        }
    }
    Some(if saturated { u64::MAX } else { v })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let (t, e) = tokenize(s.as_bytes());
        assert!(e.is_none(), "{e:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    fn lex_err(s: &str) -> (LocatedKind, u32, u32) {
        let (_, e) = tokenize(s.as_bytes());
        let e = e.expect("error expected");
        (e.kind, e.pos.line, e.pos.col)
    }

    #[test]
    fn keywords_sorted() {
        let mut k = KEYWORDS.to_vec();
        k.sort();
        assert_eq!(k, KEYWORDS);
    }

    #[test]
    fn numbers_are_c_base0() {
        assert_eq!(toks("0x5a8")[0], Tok::Uint(1448));
        assert_eq!(toks("0")[0], Tok::Uint(0));
        assert_eq!(toks("010")[0], Tok::Uint(8));
        assert_eq!(toks("18446744073709551616")[0], Tok::Uint(u64::MAX));
        assert_eq!(lex_err("mtu 01448;"), (LocatedKind::Syntax, 1, 5));
        assert_eq!(lex_err("1448abc"), (LocatedKind::Syntax, 1, 1));
        assert_eq!(lex_err("0x;"), (LocatedKind::Syntax, 1, 1));
        assert_eq!(lex_err("-1"), (LocatedKind::Syntax, 1, 1));
    }

    #[test]
    fn addresses() {
        assert_eq!(toks("1.2.3.4:5")[0], Tok::Addr4(Ipv4Addr::new(1, 2, 3, 4)));
        for bad in ["1.2.3", "01.2.3.4", "1.2.3.256", "1.2.3.4.5"] {
            assert_eq!(lex_err(bad), (LocatedKind::Syntax, 1, 1), "{bad}");
        }
        assert_eq!(toks("[::1]")[0], Tok::Addr6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            toks("[fe80::1%eth0]")[0],
            Tok::Addr6Scoped("fe80::1".parse().unwrap(), b"eth0".to_vec())
        );
        assert_eq!(
            toks("[fe80::1%]")[0],
            Tok::Addr6Scoped("fe80::1".parse().unwrap(), Vec::new())
        );
        assert_eq!(lex_err(" [::ffff:1.2.3.4]"), (LocatedKind::Syntax, 1, 2));
        assert_eq!(
            lex_err("[fe80::1%averyverylongifname]"),
            (LocatedKind::Syntax, 1, 1)
        );
        assert_eq!(lex_err("[fe80::1]%eth0"), (LocatedKind::Syntax, 1, 10));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(toks(r#""a\"b\\c\n""#)[0], Tok::Str(b"a\"b\\cn".to_vec()));
        assert_eq!(toks("\"a\\\nb\"")[0], Tok::Str(b"ab".to_vec()));
        assert_eq!(toks("\"a\\\r\nb\"")[0], Tok::Str(b"a\r\nb".to_vec()));
        assert_eq!(toks("\"x\ty\"")[0], Tok::Str(b"x\ty".to_vec()));
        assert_eq!(
            lex_err("interface \"a\"\"b\";"),
            (LocatedKind::Syntax, 1, 14)
        );
        assert_eq!(
            lex_err("x;\ninterface \"vpn;\n"),
            (LocatedKind::Syntax, 1, 1)
        );
        assert_eq!(
            lex_err("interface \"vpn;\nmtu 1;\n"),
            (LocatedKind::UnterminatedString, 1, 11)
        );
    }

    #[test]
    fn comments_and_words() {
        assert_eq!(
            toks("mtu 1400;# x\n/*a*/\"a\"/*x*/ // y"),
            vec![
                Tok::Keyword("mtu"),
                Tok::Uint(1400),
                Tok::Semicolon,
                Tok::Str(b"a".to_vec()),
                Tok::Eof
            ]
        );
        assert_eq!(
            lex_err("mtu 1;\n/*/ x"),
            (LocatedKind::UnterminatedComment, 2, 1)
        );
        assert_eq!(lex_err("MTU"), (LocatedKind::Syntax, 1, 1));
        assert_eq!(lex_err("        falls back"), (LocatedKind::Syntax, 1, 9));
        assert_eq!(lex_err("a / b"), (LocatedKind::Syntax, 1, 1));
        assert_eq!(lex_err("mtu / b"), (LocatedKind::Syntax, 1, 5));
        assert_eq!(lex_err("\u{feff}mtu"), (LocatedKind::Syntax, 1, 1));
        assert_eq!(toks("pre-up post-down")[1], Tok::Keyword("post-down"));
    }

    #[test]
    fn eof_position() {
        let eof = |s: &str| tokenize(s.as_bytes()).0.last().unwrap().pos;
        assert_eq!(eof("mtu 1400\n"), Pos { line: 1, col: 9 });
        assert_eq!(eof("mtu 1400"), Pos { line: 1, col: 5 });
        assert_eq!(eof("mtu 1400\n\n\n"), Pos { line: 3, col: 1 });
        assert_eq!(eof("mtu 1400 # c"), Pos { line: 1, col: 10 });
        assert_eq!(eof("mtu 1400 # abc\n"), Pos { line: 1, col: 10 });
        assert_eq!(eof("mtu 1400 #\n#c\n"), Pos { line: 2, col: 1 });
        assert_eq!(eof("mtu 1400 /* x */\n"), Pos { line: 1, col: 17 });
        assert_eq!(eof("mtu 1400 /* a\n\n*/"), Pos { line: 1, col: 10 });
        assert_eq!(eof("mtu 1400 /* ab */  "), Pos { line: 1, col: 19 });
        assert_eq!(eof("mtu 1400\t\r\n"), Pos { line: 1, col: 11 });
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            toks("10.0.0.1/24")[0],
            Tok::Prefix("10.0.0.1".parse().unwrap(), 24)
        );
        assert_eq!(
            toks("[2001:db8::1]/64")[0],
            Tok::Prefix("2001:db8::1".parse().unwrap(), 64)
        );
    }
}
