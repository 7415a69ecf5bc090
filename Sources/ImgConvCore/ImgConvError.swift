/// The one error type of imgconv: a category, the file it concerns, a reason and an optional
/// underlying cause. `description` is the single line the CLI prints.
public struct ImgConvError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case invalidArgument = "invalid argument"
        case notFound = "not found"
        case unreadable = "unreadable input"
        case unsupported = "unsupported format"
        case corruptInput = "corrupt input"
        case limitExceeded = "limit exceeded"
        case shapeMismatch = "shape mismatch"
        case io = "I/O error"
        /// The machine ran out of something (memory, file descriptors): never the file's fault.
        case resources = "out of resources"
        case verificationFailed = "verification failed"
        case interrupted = "interrupted"
        case `internal` = "internal error"

        /// Process exit status, following BSD sysexits (documented in the README).
        public var exitCode: Int32 {
            switch self {
            case .invalidArgument: return 64
            case .unsupported, .corruptInput, .limitExceeded, .shapeMismatch, .verificationFailed: return 65
            case .notFound, .unreadable: return 66
            case .io: return 74
            case .resources: return 71
            case .interrupted: return 130
            case .internal: return 70
            }
        }
    }

    public var code: Code

    /// A fault of the host, not of the input (I/O, resources, an internal error): it stops the
    /// run whatever `--skip-bad` says, and is never reported as a corrupt file.
    public var isHostFault: Bool { code == .io || code == .resources || code == .internal }

    /// An error a decoding library reported: `.resources` when it ran out of memory (the
    /// machine's fault, not the file's), else `.corruptInput`.
    public static func library(_ name: String, _ reason: String) -> ImgConvError {
        let text = reason.lowercased()
        let memory = ["out of memory", "insufficient memory", "memory allocation", "cannot allocate", "no space for",
                      "not enough memory", "malloc"].contains { text.contains($0) }
        return ImgConvError(memory ? .resources : .corruptInput, "\(name): \(reason)")
    }
    public var path: String?
    public var message: String

    public init(_ code: Code, path: String? = nil, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    /// One line: control characters in the path or the reason (a file named with a newline or an
    /// escape sequence) are shown escaped, see `escapingControlCharacters(_:)`.
    public var description: String {
        if let path { return escapingControlCharacters("\(code.rawValue): '\(path)': \(message)") }
        return escapingControlCharacters("\(code.rawValue): \(message)")
    }

    /// The same error about another path (used to name the user-visible file instead of an internal one).
    public func at(_ path: String) -> ImgConvError {
        var copy = self
        copy.path = path
        return copy
    }
}

/// `text` with every control character escaped, so that a name printed in a message can neither
/// split its line nor drive the terminal: C0 controls (U+0000-U+001F) become `\n`, `\r`, `\t` or
/// `\xNN` (as non-UTF-8 name bytes are shown), DEL and C1 controls (U+007F-U+009F) `\u007F`...
/// - Parameter keepingNewlines: leave `\n` as it is (text of several lines, such as JSON, whose
///   strings are escaped already).
public func escapingControlCharacters(_ text: String, keepingNewlines: Bool = false) -> String {
    func escaped(_ s: Unicode.Scalar) -> Bool { isControlCharacter(s) && !(keepingNewlines && s == "\n") }
    guard text.unicodeScalars.contains(where: escaped) else { return text }
    var out = ""
    for scalar in text.unicodeScalars {
        if escaped(scalar) { out += controlEscape(scalar) } else { out.unicodeScalars.append(scalar) }
    }
    return out
}

/// Whether a scalar is a C0 or C1 control character or DEL.
func isControlCharacter(_ s: Unicode.Scalar) -> Bool {
    s.value < 0x20 || (s.value >= 0x7F && s.value <= 0x9F)
}

/// The escape shown for a control character: `\n`, `\r`, `\t`, `\xNN` (other C0), `\u00NN` (DEL and
/// C1: JSON's own escape, so that a JSON document printed through the console stays valid and
/// decodes to the same name; JSON encoders leave these characters raw).
func controlEscape(_ s: Unicode.Scalar) -> String {
    switch s {
    case "\n": return "\\n"
    case "\r": return "\\r"
    case "\t": return "\\t"
    default:
        let hex = String(s.value, radix: 16, uppercase: true)
        return s.value < 0x20 ? "\\x" + (s.value < 0x10 ? "0" : "") + hex : "\\u00" + hex
    }
}

/// Text of the C `errno` value, for I/O errors.
@inline(__always)
public func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
#if canImport(Glibc)
import Glibc
#endif
