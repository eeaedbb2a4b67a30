//! Flattening OTLP `AnyValue`s into the text values of scry's attribute maps.

use std::fmt::Write as _;

use arrow::array::{ArrayRef, MapBuilder, StringBuilder};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use std::sync::Arc;

/// Deeper nesting than this is cut off with a marker; protobuf decoding already bounds depth,
/// this keeps the text bounded for JSON input too.
const MAX_DEPTH: usize = 64;

/// Text form of a value as stored in attribute maps (see docs/schema.md).
pub fn value_to_text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        other => {
            let mut out = String::new();
            write_scalar_or_json(other, &mut out, 0);
            Some(out)
        }
    }
}

/// Appends a value's text form to `out`; strings bare at top level, JSON inside containers.
fn write_scalar_or_json(value: &Value, out: &mut String, depth: usize) {
    match value {
        Value::StringValue(s) => out.push_str(s),
        Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        Value::DoubleValue(d) => write_double(*d, out),
        Value::BytesValue(b) => out.push_str(&hex::encode(b)),
        // An index into a profile's string table; without the table, the index is all we have.
        Value::StringValueStrindex(i) => {
            let _ = write!(out, "{i}");
        }
        Value::ArrayValue(_) | Value::KvlistValue(_) => write_json(value, out, depth),
    }
}

fn write_double(d: f64, out: &mut String) {
    if d.is_finite() {
        let _ = write!(out, "{d}");
    } else if d.is_nan() {
        out.push_str("NaN");
    } else if d > 0.0 {
        out.push_str("Infinity");
    } else {
        out.push_str("-Infinity");
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("strings always serialize"));
}

/// Writes a value as JSON text (used for arrays, kvlists and structured log bodies).
pub fn write_json(value: &Value, out: &mut String, depth: usize) {
    if depth >= MAX_DEPTH {
        out.push_str("\"...\"");
        return;
    }
    match value {
        Value::StringValue(s) => write_json_string(s, out),
        Value::BytesValue(b) => write_json_string(&hex::encode(b), out),
        Value::DoubleValue(d) if !d.is_finite() => {
            let mut s = String::new();
            write_double(*d, &mut s);
            write_json_string(&s, out);
        }
        Value::BoolValue(_)
        | Value::IntValue(_)
        | Value::DoubleValue(_)
        | Value::StringValueStrindex(_) => write_scalar_or_json(value, out, depth),
        Value::ArrayValue(arr) => {
            out.push('[');
            for (i, v) in arr.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_any_json(v, out, depth + 1);
            }
            out.push(']');
        }
        Value::KvlistValue(kvs) => {
            out.push('{');
            for (i, kv) in kvs.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(&kv.key, out);
                out.push(':');
                match &kv.value {
                    Some(v) => write_any_json(v, out, depth + 1),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
}

fn write_any_json(value: &AnyValue, out: &mut String, depth: usize) {
    match &value.value {
        Some(v) => write_json(v, out, depth),
        None => out.push_str("null"),
    }
}

/// Text of a log body: strings as they are, anything else as JSON.
pub fn body_to_text(body: Option<&AnyValue>) -> Option<String> {
    let value = body?.value.as_ref()?;
    match value {
        Value::StringValue(s) => Some(s.clone()),
        other => {
            let mut out = String::new();
            write_json(other, &mut out, 0);
            Some(out)
        }
    }
}

/// Attributes flattened once, to be appended to many rows (resource and scope attributes).
pub type FlatAttributes = Vec<(String, Option<String>)>;

/// Flattens key/values to text pairs.
pub fn flatten(kvs: &[KeyValue]) -> FlatAttributes {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().and_then(value_to_text)))
        .collect()
}

/// The `service.name` resource attribute, or `unknown_service` as the SDKs default to.
pub fn service_name(resource: &[KeyValue]) -> String {
    resource
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(value_to_text)
        .unwrap_or_else(|| "unknown_service".to_string())
}

/// Builder of a `Map<Utf8, Utf8>` attributes column.
pub struct AttributesBuilder {
    inner: MapBuilder<StringBuilder, StringBuilder>,
    scratch: String,
}

impl Default for AttributesBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AttributesBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            inner: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            scratch: String::new(),
        }
    }

    /// Appends one row's map from OTLP key/values.
    pub fn append_kvs(&mut self, kvs: &[KeyValue]) {
        for kv in kvs {
            self.inner.keys().append_value(&kv.key);
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => self.inner.values().append_value(s),
                Some(other) => {
                    self.scratch.clear();
                    write_scalar_or_json(other, &mut self.scratch, 0);
                    self.inner.values().append_value(&self.scratch);
                }
                None => self.inner.values().append_null(),
            }
        }
        self.inner
            .append(true)
            .expect("keys and values appended in pairs");
    }

    /// Appends one row's map from pre-flattened pairs.
    pub fn append_flat(&mut self, pairs: &FlatAttributes) {
        for (k, v) in pairs {
            self.inner.keys().append_value(k);
            self.inner.values().append_option(v.as_deref());
        }
        self.inner
            .append(true)
            .expect("keys and values appended in pairs");
    }

    /// Finishes the column.
    pub fn finish(&mut self) -> ArrayRef {
        Arc::new(self.inner.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(Value::StringValue(v.into())),
        }
    }

    #[test]
    fn scalars_flatten_to_text() {
        let int = AnyValue {
            value: Some(Value::IntValue(-42)),
        };
        let dbl = AnyValue {
            value: Some(Value::DoubleValue(1.5)),
        };
        let b = AnyValue {
            value: Some(Value::BoolValue(true)),
        };
        let bytes = AnyValue {
            value: Some(Value::BytesValue(vec![0xde, 0xad])),
        };
        assert_eq!(value_to_text(&int).unwrap(), "-42");
        assert_eq!(value_to_text(&dbl).unwrap(), "1.5");
        assert_eq!(value_to_text(&b).unwrap(), "true");
        assert_eq!(value_to_text(&bytes).unwrap(), "dead");
        assert_eq!(value_to_text(&s("a\"b")).unwrap(), "a\"b");
    }

    #[test]
    fn containers_become_json() {
        let arr = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![
                    s("x"),
                    AnyValue {
                        value: Some(Value::IntValue(1)),
                    },
                ],
            })),
        };
        let kv = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(arr.clone()),
                    ..Default::default()
                }],
            })),
        };
        assert_eq!(value_to_text(&arr).unwrap(), r#"["x",1]"#);
        assert_eq!(value_to_text(&kv).unwrap(), r#"{"k":["x",1]}"#);
        let parsed: serde_json::Value = serde_json::from_str(&value_to_text(&kv).unwrap()).unwrap();
        assert_eq!(parsed["k"][1], 1);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut v = s("leaf");
        for _ in 0..500 {
            v = AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values: vec![v] })),
            };
        }
        let text = value_to_text(&v).unwrap();
        assert!(text.len() < 1000);
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }

    #[test]
    fn service_name_defaults() {
        assert_eq!(service_name(&[]), "unknown_service");
        let kv = KeyValue {
            key: "service.name".into(),
            value: Some(s("cart")),
            ..Default::default()
        };
        assert_eq!(service_name(&[kv]), "cart");
    }
}
