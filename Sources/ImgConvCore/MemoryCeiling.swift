#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import CSystem

/// How much memory this process may really use, so that work which cannot fit is refused before
/// it starts (exit 71, with the figures) instead of failing an allocation halfway: a failed Swift
/// allocation is a fatal error, not an error that can be reported.
///
/// The ceiling is the smallest of
/// - the address-space limit (`ulimit -v`, RLIMIT_AS), less what the process has mapped already
///   (VmSize: the binary, its libraries, thread stacks);
/// - the cgroup v2 `memory.max` of the process's cgroup (a container's limit), when set;
/// - the physical memory.
public enum MemoryCeiling {
    /// Where a ceiling comes from, for messages.
    public enum Source: Sendable {
        case addressSpace(limit: Int)
        case cgroup(limit: Int)
        case physical(total: Int)

        public var text: String {
            switch self {
            case .addressSpace(let limit): return "the address-space limit (ulimit -v \(limit >> 10))"
            case .cgroup(let limit): return "the cgroup's memory.max (\(mib(limit)))"
            case .physical(let total): return "this machine's memory (\(mib(total)))"
            }
        }

        /// A limit set on the process (not the machine's size).
        public var isProcessLimit: Bool {
            if case .physical = self { return false }
            return true
        }
    }

    /// Bytes the process may still allocate and where that figure comes from.
    public struct Ceiling: Sendable, CustomStringConvertible {
        public var bytes: Int
        public var source: Source

        /// "this machine's memory", "the 95.2 MiB that the address-space limit (ulimit -v 200000) leaves"
        public var description: String {
            if case .physical = source { return "this machine's memory" }
            return "the \(mib(bytes)) that \(source.text) leaves"
        }
    }

    /// The physical memory in bytes (4 GiB when unknown).
    public static let physical: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return 1 << 32 }
        return pages * size
    }()

    /// The text of a small file of /proc or /sys (whose sizes read as 0: read to its end, at most
    /// 64 KiB), nil when it cannot be read. Plain reads: FoundationEssentials' file reading cost
    /// more than the rest of a start-up's checks.
    static func smallTextFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 64 << 10)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            count += n
        }
        return String(decoding: bytes[..<count], as: UTF8.self)
    }

    /// RLIMIT_AS's soft limit, nil when unlimited.
    public static var addressSpaceLimit: Int? {
        var r = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &r) == 0, r.rlim_cur != rlim_t.max else { return nil }
        return Int(clamping: r.rlim_cur)
    }

    /// The address space mapped now (VmSize), nil when /proc is not there.
    public static func addressSpaceInUse() -> Int? {
        guard let text = smallTextFile("/proc/self/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmSize:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = Int(fields[1]) { return kib << 10 }
        }
        return nil
    }

    /// The cgroup v2 `memory.max` of this process's cgroup, nil when there is none ("max").
    public static let cgroupLimit: Int? = {
        guard let text = smallTextFile("/proc/self/cgroup") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            var path = String(line.dropFirst(3))
            // The cgroup and its ancestors (as mounted in this namespace): the smallest limit holds.
            var smallest: Int?
            while true {
                let file = "/sys/fs/cgroup" + (path == "/" ? "" : path) + "/memory.max"
                if let v = smallTextFile(file),
                   let n = Int(v.trimmingWhitespace()) {
                    smallest = min(smallest ?? n, n)
                }
                guard path != "/", let slash = path.lastIndex(of: "/") else { break }
                path = slash == path.startIndex ? "/" : String(path[..<slash])
            }
            return smallest
        }
        return nil
    }()

    /// What the process may still allocate now: the smallest of the ceilings above.
    public static func current() -> Ceiling {
        var best = Ceiling(bytes: physical, source: .physical(total: physical))
        if let cg = cgroupLimit, cg < best.bytes { best = Ceiling(bytes: cg, source: .cgroup(limit: cg)) }
        if let limit = addressSpaceLimit {
            let free = max(0, limit - (addressSpaceInUse() ?? 0))
            if free < best.bytes { best = Ceiling(bytes: free, source: .addressSpace(limit: limit)) }
        }
        return best
    }

    /// The ceiling when the process started (see `prepare`).
    public static let atStart: Ceiling = current()

    /// Called first thing in `main`: notes the ceiling, and under an address-space limit keeps
    /// glibc to one malloc arena, since each further arena (one per thread, up to 8 per core)
    /// reserves 64 MiB of address space it may never use.
    /// It also keeps freed blocks of up to 32 MiB in malloc's heap (a decoded image is allocated
    /// and freed once per image: mapped fresh each time, the kernel's page faults and zeroing
    /// were a fifth of a jpeg256 run's system time).
    public static func prepare() {
        if addressSpaceLimit != nil { _ = imc_limit_malloc_arenas(1) }
        _ = imc_keep_freed_memory(32 << 20)
        _ = atStart
    }

    /// What any subcommand may need beyond what the process has mapped when it starts (its
    /// writers' and readers' buffers, a few threads, the libraries' own allocations).
    public static let minimum = 48 << 20

    /// - Throws: `.resources` (71) when a limit set on the process leaves less than `minimum`.
    public static func requireMinimum() throws {
        let c = current()
        guard c.source.isProcessLimit, c.bytes < minimum else { return }
        throw ImgConvError(.resources, "out of memory: a run needs at least \(mib(minimum)) beyond the program itself, more than \(c)")
    }

    /// Checks that `bytes` can be allocated now (malloc and free): a Swift allocation that fails is
    /// a fatal error, so the largest buffers are tried first.
    /// - Throws: `.resources` naming `what` and the figures.
    public static func reserve(_ bytes: Int, for what: @autoclosure () -> String) throws {
        guard bytes >= 1 << 20 else { return }
        guard let p = malloc(bytes) else {
            throw outOfMemory(bytes, for: what())
        }
        free(p)
    }

    /// The error of an allocation of `bytes` that failed or would not fit.
    public static func outOfMemory(_ bytes: Int, for what: String) -> ImgConvError {
        let c = current()
        return ImgConvError(.resources, "out of memory: \(what) needs \(mib(bytes)), more than \(c.description)")
    }
}

/// Bytes as MiB for messages ("12.0 MiB").
public func mib(_ bytes: Int) -> String {
    cFormat("%.1f MiB", Double(bytes) / Double(1 << 20))
}
