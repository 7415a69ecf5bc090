/// The one error type of imgconv: a category, the file it concerns, a reason and an optional
/// underlying cause. `description` is the single line the CLI prints.
public struct ImgConvError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case invalidArgument = "invalid argument"
        case notFound = "not found"
        case unsupported = "unsupported format"
        case corruptInput = "corrupt input"
        case limitExceeded = "limit exceeded"
        case shapeMismatch = "shape mismatch"
        case io = "I/O error"
        case verificationFailed = "verification failed"
        case interrupted = "interrupted"
        case `internal` = "internal error"

        /// Process exit status, following BSD sysexits (documented in the README).
        public var exitCode: Int32 {
            switch self {
            case .invalidArgument: return 64
            case .unsupported, .corruptInput, .limitExceeded, .shapeMismatch, .verificationFailed: return 65
            case .notFound: return 66
            case .io: return 74
            case .interrupted: return 130
            case .internal: return 70
            }
        }
    }

    public var code: Code
    public var path: String?
    public var message: String

    public init(_ code: Code, path: String? = nil, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String {
        if let path { return "\(code.rawValue): '\(path)': \(message)" }
        return "\(code.rawValue): \(message)"
    }

    /// The same error about another path (used to name the user-visible file instead of an internal one).
    public func at(_ path: String) -> ImgConvError {
        var copy = self
        copy.path = path
        return copy
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
