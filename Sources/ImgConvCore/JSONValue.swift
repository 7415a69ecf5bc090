/// Any JSON document, for a manifest member whose structure another module defines (the `check`
/// findings of `to-* --check`): decoded as read, written back through `JSONText` with its keys
/// sorted, in the manifest's layout.
public indirect enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let v = try? c.decode(Bool.self) {
            self = .bool(v)
        } else if let v = try? c.decode(Double.self) {
            self = .number(v)
        } else if let v = try? c.decode(String.self) {
            self = .string(v)
        } else if let v = try? c.decode([JSONValue].self) {
            self = .array(v)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let v): try c.encode(v)
        case .number(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .array(let v): try c.encode(v)
        case .object(let v): try c.encode(v)
        }
    }
}

extension JSONText {
    /// Writes a value where a value goes (after a key, or after `item()`).
    mutating func value(_ v: JSONValue) {
        switch v {
        case .null: raw("null")
        case .bool(let b): bool(b)
        case .number(let d):
            if d == d.rounded(), abs(d) < 1e15 { int(Int64(d)) } else { raw(d.isFinite ? "\(d)" : "null") }
        case .string(let s): string(s)
        case .array(let items):
            beginArray()
            for item in items { self.item(); value(item) }
            endArray()
        case .object(let members):
            beginObject()
            for k in members.keys.sorted() { key(k); value(members[k]!) }
            endObject()
        }
    }
}
