import ImgConvCore

/// The NPY format's header (numpy `lib/format`): `\x93NUMPY`, version, header length, then a
/// Python dict literal `{'descr': ..., 'fortran_order': ..., 'shape': (...), }` padded with spaces
/// and a final newline so the data starts on a 64-byte boundary.
public struct NPYHeader: Equatable, Sendable {
    public var descr: String
    public var fortranOrder: Bool
    public var shape: [Int]

    public static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
    /// numpy refuses longer headers by default (`max_header_size`).
    public static let maxHeaderLength = 10_000

    public init(descr: String, fortranOrder: Bool = false, shape: [Int]) {
        self.descr = descr
        self.fortranOrder = fortranOrder
        self.shape = shape
    }

    private var dictText: String {
        let dims: String
        switch shape.count {
        case 0: dims = "()"
        case 1: dims = "(\(shape[0]),)"
        default: dims = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        return "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(dims), }"
    }

    /// Version 1.0 header bytes. Like numpy, room is reserved so the leading dimension can be
    /// rewritten in place with up to 21 digits (`encoded(length:)` with the first call's count).
    public func encoded(length: Int? = nil) -> [UInt8] {
        var text = Array(dictText.utf8)
        let total: Int
        if let length {
            total = length
        } else {
            let reserve = shape.isEmpty ? 0 : max(0, 21 - String(shape[0]).count)
            let unpadded = 10 + text.count + reserve + 1
            total = (unpadded + 63) / 64 * 64
        }
        let headerLength = total - 10
        precondition(headerLength >= text.count + 1 && headerLength <= 65535, "NPY header does not fit")
        text.append(contentsOf: [UInt8](repeating: 0x20, count: headerLength - text.count - 1))
        text.append(0x0A)
        return Self.magic + [1, 0, UInt8(headerLength & 0xFF), UInt8(headerLength >> 8)] + text
    }

    /// Parses and validates a header at the start of `bytes`, field by field.
    /// - Returns: the header and the offset at which the data starts.
    /// - Throws: `.corruptInput` naming `path`, the field and the value found.
    public static func parse(_ bytes: [UInt8], path: String) throws -> (NPYHeader, Int) {
        func fail(_ why: String) -> ImgConvError { ImgConvError(.corruptInput, path: path, "NPY header: \(why)") }
        guard bytes.count >= 10 else { throw fail("file is only \(bytes.count) bytes") }
        guard Array(bytes[0..<6]) == magic else { throw fail("magic is not \\x93NUMPY") }
        let major = bytes[6], minor = bytes[7]
        let lengthSize: Int
        switch (major, minor) {
        case (1, 0): lengthSize = 2
        case (2, 0), (3, 0): lengthSize = 4
        default: throw fail("version \(major).\(minor) is not 1.0, 2.0 or 3.0")
        }
        guard bytes.count >= 8 + lengthSize else { throw fail("truncated length field") }
        var headerLength = 0
        for k in 0..<lengthSize { headerLength |= Int(bytes[8 + k]) << (8 * k) }
        guard headerLength <= maxHeaderLength else { throw fail("header length \(headerLength) is over \(maxHeaderLength)") }
        let start = 8 + lengthSize
        guard bytes.count >= start + headerLength else {
            throw fail("header length \(headerLength) runs past the end of the data (\(bytes.count) bytes)")
        }
        let text = major == 3
            ? String(decoding: bytes[start..<start + headerLength], as: UTF8.self)
            : String(bytes[start..<start + headerLength].map { Character(Unicode.Scalar($0)) })
        var parser = DictParser(text: text)
        let dict: [String: DictParser.Value]
        do { dict = try parser.parseDict() } catch let e as DictParser.Failure { throw fail(e.message) }
        guard Set(dict.keys) == ["descr", "fortran_order", "shape"] else {
            throw fail("keys are \(dict.keys.sorted()), expected descr, fortran_order, shape")
        }
        guard case .string(let descr)? = dict["descr"] else { throw fail("'descr' is not a string") }
        guard case .bool(let fortran)? = dict["fortran_order"] else { throw fail("'fortran_order' is not True or False") }
        guard case .tuple(let shape)? = dict["shape"] else { throw fail("'shape' is not a tuple of integers") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("'shape' \(shape) has a negative dimension") }
        return (NPYHeader(descr: descr, fortranOrder: fortran, shape: shape), start + headerLength)
    }
}

/// Parses the small subset of Python literals an NPY header uses.
struct DictParser {
    enum Value { case string(String), bool(Bool), tuple([Int]) }
    struct Failure: Error { var message: String }

    private let chars: [Character]
    private var i = 0
    init(text: String) { chars = Array(text) }

    private mutating func skipSpace() { while i < chars.count, chars[i].isWhitespace { i += 1 } }
    private mutating func expect(_ c: Character) throws {
        skipSpace()
        guard i < chars.count, chars[i] == c else {
            throw Failure(message: "expected '\(c)' at character \(i), found \(i < chars.count ? "'\(chars[i])'" : "end")")
        }
        i += 1
    }
    private mutating func peek() -> Character? { skipSpace(); return i < chars.count ? chars[i] : nil }

    mutating func parseDict() throws -> [String: Value] {
        try expect("{")
        var out: [String: Value] = [:]
        while true {
            if peek() == "}" { i += 1; break }
            guard case .string(let key) = try parseValue() else { throw Failure(message: "a key is not a string") }
            try expect(":")
            guard out[key] == nil else { throw Failure(message: "key '\(key)' appears twice") }
            out[key] = try parseValue()
            if peek() == "," { i += 1; continue }
            try expect("}")
            break
        }
        return out
    }

    private mutating func parseValue() throws -> Value {
        guard let c = peek() else { throw Failure(message: "unexpected end") }
        if c == "'" || c == "\"" {
            i += 1
            var s = ""
            while i < chars.count, chars[i] != c { s.append(chars[i]); i += 1 }
            guard i < chars.count else { throw Failure(message: "unterminated string") }
            i += 1
            return .string(s)
        }
        if c == "(" {
            i += 1
            var dims: [Int] = []
            var sawComma = false
            while true {
                if peek() == ")" { i += 1; break }
                var digits = ""
                while i < chars.count, chars[i].isNumber { digits.append(chars[i]); i += 1 }
                if i < chars.count, chars[i] == "L" { i += 1 }  // Python 2 long
                guard let v = Int(digits) else { throw Failure(message: "'shape' holds a non-integer") }
                dims.append(v)
                if peek() == "," { i += 1; sawComma = true; continue }
                try expect(")")
                break
            }
            if dims.count == 1 && !sawComma { throw Failure(message: "'shape' (\(dims[0])) is not a tuple") }
            return .tuple(dims)
        }
        var word = ""
        while i < chars.count, chars[i].isLetter || chars[i].isNumber { word.append(chars[i]); i += 1 }
        switch word {
        case "True": return .bool(true)
        case "False": return .bool(false)
        default: throw Failure(message: "unexpected value '\(word)'")
        }
    }
}
