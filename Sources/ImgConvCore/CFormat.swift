import Glibc

/// `format` filled by C's `vsnprintf`: numbers only (`%d`, `%x` for 32-bit values, `%ld` for
/// `Int`, `%f`, `%g`), for messages and reports. (Foundation's `String(format:)` is not in
/// FoundationEssentials, the part of Foundation the binary links.)
public func cFormat(_ format: String, _ arguments: CVarArg...) -> String {
    // A va_list is used up by one call: a text longer than the first buffer is formatted again.
    func fill(_ buffer: inout [UInt8]) -> Int {
        Int(withVaList(arguments) { list in
            buffer.withUnsafeMutableBytes { vsnprintf($0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count, format, list) }
        })
    }
    var buffer = [UInt8](repeating: 0, count: 128)
    let needed = fill(&buffer)
    if needed >= buffer.count {
        buffer = [UInt8](repeating: 0, count: needed + 1)
        _ = fill(&buffer)
    }
    return String(decoding: buffer[0..<max(0, needed)], as: UTF8.self)
}

extension StringProtocol {
    /// The text without spaces, tabs and line ends at either end.
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
