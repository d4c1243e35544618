//! Read-only access to a parsed JSON document, so that the indicator rules run
//! unchanged on serde_json's `Value` (what the store holds when it writes) and
//! on sonic-rs's (the full recompute parses millions of stored bodies, and
//! sonic-rs parses them about four times as fast as serde_json's `Value`).

/// The accessors the indicator rules use.
pub trait Doc: Sized {
    fn get(&self, key: &str) -> Option<&Self>;
    fn as_str(&self) -> Option<&str>;
    fn as_bool(&self) -> Option<bool>;
    fn as_array(&self) -> Option<&[Self]>;
    /// A number's decimal text exactly as serde_json writes it (money is read
    /// from this text, so both parsers must give the same one), except that
    /// negative zero is `0.0`: sonic-rs does not keep the sign of a zero.
    /// `None` for anything that is not a number.
    fn number_text(&self) -> Option<String>;
    /// The JSON text, for messages.
    fn to_json(&self) -> String;
}

impl Doc for serde_json::Value {
    fn get(&self, key: &str) -> Option<&Self> {
        serde_json::Value::get(self, key)
    }
    fn as_str(&self) -> Option<&str> {
        serde_json::Value::as_str(self)
    }
    fn as_bool(&self) -> Option<bool> {
        serde_json::Value::as_bool(self)
    }
    fn as_array(&self) -> Option<&[Self]> {
        serde_json::Value::as_array(self).map(Vec::as_slice)
    }
    fn number_text(&self) -> Option<String> {
        let n = self.as_number()?;
        if n.is_f64() && n.as_f64() == Some(0.0) {
            return Some("0.0".into());
        }
        Some(n.to_string())
    }
    fn to_json(&self) -> String {
        self.to_string()
    }
}

impl Doc for sonic_rs::Value {
    fn get(&self, key: &str) -> Option<&Self> {
        sonic_rs::JsonValueTrait::get(self, key)
    }
    fn as_str(&self) -> Option<&str> {
        sonic_rs::JsonValueTrait::as_str(self)
    }
    fn as_bool(&self) -> Option<bool> {
        sonic_rs::JsonValueTrait::as_bool(self)
    }
    fn as_array(&self) -> Option<&[Self]> {
        sonic_rs::JsonContainerTrait::as_array(self).map(|a| &**a)
    }
    fn number_text(&self) -> Option<String> {
        use sonic_rs::JsonValueTrait;
        // serde_json keeps integers that fit as u64 / i64 and the rest as f64.
        if let Some(u) = self.as_u64() {
            Some(u.to_string())
        } else if let Some(i) = self.as_i64() {
            Some(i.to_string())
        } else {
            serde_json::Number::from_f64(JsonValueTrait::as_f64(self)?).map(|n| n.to_string())
        }
    }
    fn to_json(&self) -> String {
        sonic_rs::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::Doc;

    /// Both parsers give the same number text for what money may look like,
    /// including the odd forms the money rules refuse.
    #[test]
    fn number_text_agrees() {
        let samples = [
            "0",
            "1",
            "100",
            "12.5",
            "12.50",
            "10457.99",
            "0.01",
            "0.1",
            "1e2",
            "1E-2",
            "-3",
            "-0.0",
            "99999999.99",
            "100000000000",
            "12345678901234567890",
            "1.5e300",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "0.30000000000000004",
            "123.456",
        ];
        for s in samples {
            let a: serde_json::Value = serde_json::from_str(s).unwrap();
            let b: sonic_rs::Value = sonic_rs::from_str(s).unwrap();
            assert_eq!(Doc::number_text(&a), Doc::number_text(&b), "{s}");
        }
    }

    #[test]
    fn accessors_agree() {
        let text = r#"{"a":{"b":"x","c":[1,2,{"d":true}]},"n":2.5,"s":"字"}"#;
        let a: serde_json::Value = serde_json::from_str(text).unwrap();
        let b: sonic_rs::Value = sonic_rs::from_str(text).unwrap();
        assert_eq!(
            Doc::get(&a, "s").and_then(Doc::as_str),
            Doc::get(&b, "s").and_then(Doc::as_str)
        );
        let arr_a = Doc::get(&a, "a")
            .and_then(|v| Doc::get(v, "c"))
            .and_then(Doc::as_array)
            .unwrap();
        let arr_b = Doc::get(&b, "a")
            .and_then(|v| Doc::get(v, "c"))
            .and_then(Doc::as_array)
            .unwrap();
        assert_eq!(arr_a.len(), arr_b.len());
        assert_eq!(
            Doc::get(&arr_a[2], "d").and_then(Doc::as_bool),
            Doc::get(&arr_b[2], "d").and_then(Doc::as_bool)
        );
        assert_eq!(
            Doc::get(&a, "n").and_then(Doc::number_text),
            Doc::get(&b, "n").and_then(Doc::number_text)
        );
        assert_eq!(Doc::get(&b, "s").and_then(Doc::number_text), None);
        assert!(Doc::get(&b, "missing").is_none());
    }
}
