/// A small JSON writer for the manifest: pretty-printed with two-space indentation, keys in the
/// order given (the manifest gives them sorted), no intermediate tree, so a manifest of a million
/// files costs the bytes of its text and little else. Floats use Swift's shortest round-trip form.
struct JSONText {
    private(set) var bytes: [UInt8] = []
    private var depth = 0
    /// Whether the open arrays and objects have no element yet, innermost in bit 0 (one bit per
    /// level, the enclosing level of a fragment included: JSON here nests a few levels deep).
    private var first: UInt64 = 1
    private var levels = 1

    init(capacity: Int = 1 << 16) { bytes.reserveCapacity(capacity) }

    /// A fragment: elements of an array or object that is open at `depth`, the first of them
    /// with `first` (no comma before it).
    init(depth: Int, first: Bool) {
        self.depth = depth
        self.first = first ? 1 : 0
        bytes.reserveCapacity(256)   // a file's entry, in one allocation
    }

    /// A fragment (as `init(depth:first:)`) written at the end of `text`, which the writer holds
    /// until `takeBytes()` gives it back (no copy).
    init(depth: Int, first: Bool, continuing text: inout [UInt8]) {
        self.depth = depth
        self.first = first ? 1 : 0
        swap(&bytes, &text)
    }

    /// The text so far, leaving the writer empty (for writing a long document in pieces).
    mutating func takeBytes() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }

    /// Notes that elements of the open array or object were written elsewhere (as fragments).
    mutating func elementsWritten() { first &= ~1 }

    /// A line break and 32 levels of indentation.
    private static let lineBreak: StaticString = "\n                                                                "

    private mutating func newline() {
        let n = 1 + depth * 2
        guard n <= Self.lineBreak.utf8CodeUnitCount else {
            bytes.append(0x0A)
            for _ in 0..<depth * 2 { bytes.append(0x20) }
            return
        }
        bytes.append(contentsOf: UnsafeBufferPointer(start: Self.lineBreak.utf8Start, count: n))
    }

    /// Starts the next element of the enclosing object or array (comma, line break, indent).
    private mutating func element() {
        if first & 1 == 0 { bytes.append(0x2C) }
        first &= ~1
        newline()
    }

    mutating func key(_ name: String) {
        element()
        string(name)
        bytes.append(0x3A)  // ": "
        bytes.append(0x20)
    }

    mutating func open(_ bracket: UInt8) {
        bytes.append(bracket)
        depth += 1
        precondition(levels < 64, "JSON nested too deep")
        first = first << 1 | 1
        levels += 1
    }

    mutating func close(_ bracket: UInt8) {
        precondition(levels > 0, "JSON closed more than opened")
        let empty = first & 1 != 0
        first >>= 1
        levels -= 1
        depth -= 1
        if !empty { newline() }
        bytes.append(bracket)
    }

    mutating func beginObject() { open(0x7B) }
    mutating func endObject() { close(0x7D) }
    mutating func beginArray() { open(0x5B) }
    mutating func endArray() { close(0x5D) }
    /// Starts an array element (for values inside arrays).
    mutating func item() { element() }

    mutating func string(_ s: String) {
        // Most strings need no escape: one check of their bytes, one copy.
        let copied: Bool? = s.utf8.withContiguousStorageIfAvailable { u in
            guard !Self.needsEscape(u) else { return false }
            bytes.append(0x22)
            bytes.append(contentsOf: u)
            bytes.append(0x22)
            return true
        }
        if copied == true { return }
        bytes.append(0x22)
        var s = s
        s.withUTF8 { u in
            // Runs of bytes that need no escape are copied whole (a manifest writes a path and a
            // hash per file).
            var run = 0
            for i in 0..<u.count {
                let c = u[i]
                guard c < 0x20 || c == 0x22 || c == 0x5C else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[run..<i]))
                run = i + 1
                bytes.append(0x5C)
                switch c {
                case 0x22, 0x5C: bytes.append(c)
                case 0x0A: bytes.append(0x6E)
                case 0x0D: bytes.append(0x72)
                case 0x09: bytes.append(0x74)
                default:
                    let hex: StaticString = "0123456789abcdef"
                    bytes.append(contentsOf: [0x75, 0x30, 0x30, hex.utf8Start[Int(c >> 4)], hex.utf8Start[Int(c & 15)]])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[run...]))
        }
        bytes.append(0x22)
    }

    /// Whether any byte of `u` is escaped in a JSON string (a control character, `"` or `\\`),
    /// eight bytes at a time.
    static func needsEscape(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = u.baseAddress else { return false }
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        // A byte of x is zero exactly when the same byte of (x - ones) & ~x & highs is set (the
        // lowest such byte at least, which is enough to say whether there is one).
        func hasZero(_ x: UInt64) -> Bool { (x &- ones) & ~x & highs != 0 }
        var i = 0
        while i + 8 <= u.count {
            let x = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            // Below 0x20: (x - 0x20 per byte) borrows into the byte's high bit where x's is clear.
            if (x &- 0x2020_2020_2020_2020) & ~x & highs != 0 || hasZero(x ^ 0x2222_2222_2222_2222) || hasZero(x ^ 0x5C5C_5C5C_5C5C_5C5C) {
                return true
            }
            i += 8
        }
        while i < u.count {
            let c = base[i]
            if c < 0x20 || c == 0x22 || c == 0x5C { return true }
            i += 1
        }
        return false
    }

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }
    mutating func int<T: BinaryInteger>(_ v: T) {
        // Digits written straight into the text (a manifest writes a label per file).
        guard let n = Int64(exactly: v) else { return raw(String(v)) }
        if n < 0 { bytes.append(0x2D) }
        Self.withDecimal(n.magnitude) { bytes.append(contentsOf: $0) }
    }

    /// Calls `body` with the decimal digits of `m` (ASCII, on the stack).
    static func withDecimal<R>(_ m: UInt64, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        var m = m, digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 20 digits at most
        return withUnsafeMutableBytes(of: &digits) { d in
            var k = d.count
            repeat {
                k -= 1
                d[k] = UInt8(truncatingIfNeeded: 0x30 + m % 10)
                m /= 10
            } while m > 0
            return body(UnsafeBufferPointer(rebasing: d.bindMemory(to: UInt8.self)[k...]))
        }
    }
    mutating func bool(_ v: Bool) { raw(v ? "true" : "false") }
    mutating func float(_ v: Float) { raw(v.isFinite ? "\(v)" : "null") }

    // Members of an object, for the common value types.
    mutating func member(_ k: String, _ v: String) { key(k); string(v) }
    mutating func member<T: BinaryInteger>(_ k: String, _ v: T) { key(k); int(v) }
    mutating func member(_ k: String, _ v: Bool) { key(k); bool(v) }
    mutating func member(_ k: String, ints: [Int]) { key(k); beginArray(); for v in ints { item(); int(v) }; endArray() }
    mutating func member(_ k: String, strings: [String]) { key(k); beginArray(); for v in strings { item(); string(v) }; endArray() }
    mutating func member(_ k: String, floats: [Float]) { key(k); beginArray(); for v in floats { item(); float(v) }; endArray() }
    mutating func member(_ k: String, counts: [String: Int]) {
        key(k)
        beginObject()
        for name in counts.keys.sorted() { member(name, counts[name]!) }
        endObject()
    }
}
