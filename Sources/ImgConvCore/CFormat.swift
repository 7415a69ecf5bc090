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
    /// The text without white space at either end: spaces of any kind (Unicode's space
    /// separators, such as NBSP, as Foundation's `.whitespaces` trims them), tabs and line ends.
    public func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first...last])
    }
}
