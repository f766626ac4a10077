//! The `.npy` header: the Python dict literal numpy writes (`{'descr': '<f4', 'fortran_order':
//! False, 'shape': (2, 3), }`), parsed strictly — exactly the three keys, each once, with the
//! value types numpy writes — so a malformed or ambiguous header is an error naming the field
//! instead of a guess.

/// The header's three fields.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Header {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
}

/// One parsed value.
enum Lit {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.peek().filter(|q| *q == b'\'' || *q == b'"');
        let Some(q) = quote else {
            return Err(format!("expected a quoted string at byte {}", self.i));
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("an unterminated string")?;
        self.i = start + len + 1;
        String::from_utf8(self.s[start..start + len].to_vec())
            .map_err(|_| "a non-UTF-8 string".into())
    }

    fn value(&mut self) -> Result<Lit, String> {
        match self.peek() {
            Some(b'\'' | b'"') => self.string().map(Lit::Str),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        return Ok(Lit::Tuple(dims));
                    }
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    let dim = text
                        .parse::<usize>()
                        .map_err(|_| format!("shape entry at byte {start} is not a size"))?;
                    dims.push(dim);
                    if !self.eat(b',') && self.peek() != Some(b')') {
                        return Err(format!(
                            "expected ',' or ')' in the shape at byte {}",
                            self.i
                        ));
                    }
                }
            }
            _ => {
                let rest = &self.s[self.i..];
                for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
                    if rest.starts_with(word) {
                        self.i += word.len();
                        return Ok(Lit::Bool(v));
                    }
                }
                Err(format!("an unexpected value at byte {}", self.i))
            }
        }
    }
}

/// Parses the header text.
pub(super) fn parse_header(text: &str) -> Result<Header, String> {
    let mut c = Cursor {
        s: text.as_bytes(),
        i: 0,
    };
    if !c.eat(b'{') {
        return Err("the header is not a dict".into());
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if c.eat(b'}') {
            break;
        }
        let key = c.string()?;
        if !matches!(key.as_str(), "descr" | "fortran_order" | "shape") {
            return Err(format!("unknown key '{key}'"));
        }
        if !c.eat(b':') {
            return Err(format!("expected ':' after '{key}'"));
        }
        let value = c.value().map_err(|e| format!("'{key}': {e}"))?;
        let slot_taken = match (key.as_str(), value) {
            ("descr", Lit::Str(s)) => descr.replace(s).is_some(),
            ("fortran_order", Lit::Bool(b)) => fortran.replace(b).is_some(),
            ("shape", Lit::Tuple(t)) => shape.replace(t).is_some(),
            _ => return Err(format!("'{key}' has a value of the wrong type")),
        };
        if slot_taken {
            return Err(format!("'{key}' appears twice"));
        }
        if !c.eat(b',') {
            if c.eat(b'}') {
                break;
            }
            return Err(format!("expected ',' or '}}' after '{key}'"));
        }
        if c.peek() == Some(b',') {
            return Err(format!("a doubled comma after '{key}'"));
        }
    }
    if c.peek().is_some() {
        return Err("text after the dict".into());
    }
    Ok(Header {
        descr: descr.ok_or("the header has no 'descr'")?,
        fortran_order: fortran.ok_or("the header has no 'fortran_order'")?,
        shape: shape.ok_or("the header has no 'shape'")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_headers_parse() {
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }  \n")
            .unwrap();
        assert_eq!(h.descr, "<f4");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, [2, 3]);
        assert_eq!(
            parse_header("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }")
                .unwrap()
                .shape,
            [5]
        );
        assert!(
            parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': ()}")
                .unwrap()
                .shape
                .is_empty()
        );
    }

    #[test]
    fn malformed_headers_name_the_problem() {
        for (h, want) in [
            (
                "{'descr': '<f4', 'fortran_order': 1, 'shape': (2,), }",
                "'fortran_order'",
            ),
            (
                "{'descr': 4, 'fortran_order': False, 'shape': (2,), }",
                "'descr'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': '2', }",
                "wrong type",
            ),
            (
                "{'descr': '<f4',, 'fortran_order': False, 'shape': (2,), }",
                "doubled comma",
            ),
            (
                "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                "twice",
            ),
            ("{'descr': '<f4', 'fortran_order': False, }", "no 'shape'"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
                "unknown key",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
                "not a size",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) } junk",
                "after the dict",
            ),
        ] {
            let err = parse_header(h).unwrap_err();
            assert!(err.contains(want), "{h}: {err}");
        }
    }
}
