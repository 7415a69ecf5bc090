import Dispatch
import CHDF5
import CShims
import FoundationEssentials
import Glibc
import ImgConvCore

/// The one choke point for every HDF5 call imgconv makes (as h5py's `_errors.pyx` and `api_gen.py`
/// are for h5py):
///
/// - All calls run on one dedicated thread (`HDF5.run`). Debian's build is thread-safe, but only
///   with one global lock, others are not thread-safe at all, and silencing the automatic error
///   printing (`H5Eset_auto2`) holds only for the thread that asks.
/// - Every return code is checked (`HDF5Context.check`): on failure the thread's error stack is
///   walked with `H5Ewalk2` into the one-line message of the thrown `ImgConvError`, then cleared.
///   Nothing is ever printed by HDF5 itself.
/// - Identifiers are owned by an `HDF5Handles` and closed in reverse order, on every path.
public enum HDF5 {
    private static let thread = HDF5Thread()

    /// Runs `body` on the HDF5 thread and waits for it (directly when already there). A call
    /// `reading` a file is given `readDeadline`: libhdf5 loops without end on some damaged
    /// metadata (a global heap collection whose object sizes are wrong spins in its cache), and
    /// no call of the reader (metadata, or a slab of about 8 MiB) takes that long on a sound
    /// file; then the run ends as a damaged file would, its temporary outputs removed.
    static func run<T>(reading path: String? = nil, _ body: () throws -> T) throws -> T {
        try thread.sync(body, deadline: path.map { path in
            (readDeadline, { ImgConvError(.corruptInput, path: path,
                                          "libhdf5 did not finish reading it in \(Int(readDeadline)) s (damaged metadata it loops on)") })
        })
    }

    /// Opens libhdf5 now rather than at the first HDF5 call (the library is opened once per
    /// process: that call finds it open).
    public static func preload() {
        var reason = [CChar](repeating: 0, count: 256)
        _ = imc_h5_load(&reason, reason.count)
    }

    /// Seconds one HDF5 call reading a file may take.
    static let readDeadline: Double = 60

    static var isCurrentThread: Bool { thread.isCurrent }

    /// The calling thread's HDF5 error stack as one line, outermost call first and the innermost
    /// reason last (`H5Dopen2(): unable to open dataset: object 'x' doesn't exist`); the stack is
    /// cleared.
    static func takeErrorStack() -> String {
        let collector = ErrorStackCollector()
        _ = H5Ewalk2(imc_h5e_default(), H5E_WALK_DOWNWARD, { _, entry, data in
            guard let entry, let data else { return 0 }
            let collector = Unmanaged<ErrorStackCollector>.fromOpaque(data).takeUnretainedValue()
            let function = entry.pointee.func_name.map { String(cString: $0) } ?? "?"
            var text = entry.pointee.desc.map { String(cString: $0) } ?? ""
            if text.isEmpty {
                var buffer = [CChar](repeating: 0, count: 256)
                if H5Eget_msg(entry.pointee.min_num, nil, &buffer, buffer.count) > 0 {
                    text = stringFromCBuffer(buffer)
                }
            }
            collector.entries.append((function, text))
            return 0
        }, Unmanaged.passUnretained(collector).toOpaque())
        _ = H5Eclear2(imc_h5e_default())
        return withExtendedLifetime(collector) {
            guard let first = collector.entries.first else { return "no HDF5 error stack" }
            var line = "\(first.0)(): \(oneLine(first.1))"
            if collector.entries.count > 1, let last = collector.entries.last, last.1 != first.1 {
                line += ": \(oneLine(last.1))"
            }
            return line
        }
    }

    /// An HDF5 description as one short line. I/O failures carry a `ctime` (with its newline),
    /// the file name, a buffer address and sizes; of those only the system's message matters:
    /// `file write failed: time = ..., errno = 28, error message = 'No space left on device', ...`
    /// becomes `file write failed: disk full`.
    static func oneLine(_ text: String) -> String {
        var text = text
        if let r = text.firstRange(of: "error message = '"),
           let end = text[r.upperBound...].firstIndex(of: "'") {
            let head = text.firstIndex(of: ":").map { String(text[..<$0]) } ?? ""
            var reason = String(text[r.upperBound..<end])
            // Named as imgconv's own writers name them.
            if text.contains("errno = \(ENOSPC),") { reason = "disk full" }
            if text.contains("errno = \(EFBIG),") { reason = "file too large" }
            text = (head.isEmpty ? "" : head + ": ") + reason
        }
        let scalars = text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) }
        return String(scalars).split(separator: " ").joined(separator: " ")
    }
}

private final class ErrorStackCollector {
    var entries: [(String, String)] = []
}

/// The thread every HDF5 call runs on: a loop taking one job at a time.
/// `@unchecked Sendable`: `jobs` is read and written with `condition` locked; `threadID` is set
/// once, before `started` is signalled, and only read after it.
private final class HDF5Thread: @unchecked Sendable {
    private final class Job {
        var body: (() -> Void)?
        let done = DispatchSemaphore(value: 0)
    }

    private let condition = ThreadCondition()
    private var jobs: [Job] = []
    private var threadID: pthread_t?

    init() {
        // libhdf5 is opened here, at the first HDF5 call of the process (see CHDF5/shim.h);
        // without it every call fails with the reason.
        var reason = [CChar](repeating: 0, count: 256)
        guard imc_h5_load(&reason, reason.count) == 0 else {
            unavailable = ImgConvError(.unsupported, "HDF5 files cannot be read or written here: \(stringFromCBuffer(reason))")
            return
        }
        let started = DispatchSemaphore(value: 0)
        // Without a thread (none can be started, under a memory limit) every call fails with
        // `.resources`; nothing waits for a thread that does not exist.
        running = startThread(stackSize: 4 << 20) { [self] in
            threadID = pthread_self()
            started.signal()
            loop()
        }
        if running { started.wait() }
    }

    private var running = false
    /// Why there is no HDF5 thread, when libhdf5 could not be opened.
    private var unavailable: ImgConvError?

    var isCurrent: Bool {
        guard let threadID else { return false }
        return pthread_equal(threadID, pthread_self()) != 0
    }

    private func loop() {
        // `imc_h5_load` has called H5dont_atexit before anything started the library: no
        // clean-up at process exit, which would run on the exiting thread, not this one, and
        // after a failed write (disk full) crashes flushing the half-written file. Files are
        // closed (or abandoned with their temporary name) by their owners instead.
        // Start the library and stop it printing error stacks on this thread: errors are
        // captured by HDF5.takeErrorStack instead.
        _ = H5open()
        _ = H5Eset_auto2(imc_h5e_default(), nil, nil)
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            runOnce(job)
            job.done.signal()
        }
    }

    /// Runs and drops the job's closure, so that nothing holds it once the caller resumes.
    private func runOnce(_ job: Job) {
        let body = job.body
        job.body = nil
        body?()
    }

    func sync<T>(_ body: () throws -> T, deadline: (seconds: Double, error: () -> ImgConvError)? = nil) throws -> T {
        if isCurrent { return try body() }
        if let unavailable { throw unavailable }
        guard running else { throw ImgConvError(.resources, "cannot start the HDF5 thread: \(errnoText(EAGAIN))") }
        return try withoutActuallyEscaping(body) { body in
            var result: Result<T, Error>?
            let job = Job()
            job.body = { result = Result { try body() } }
            condition.lock()
            jobs.append(job)
            condition.signal()
            condition.unlock()
            if let deadline {
                if job.done.wait(timeout: .now() + deadline.seconds) == .timedOut {
                    // The HDF5 thread cannot be stopped, and every later call would queue behind it.
                    TemporaryFiles.abandon(deadline.error())
                }
            } else {
                job.done.wait()
            }
            return try result!.get()
        }
    }
}

/// The file an HDF5 call concerns and how its failures are reported: `.io` when writing,
/// `.corruptInput` when reading.
struct HDF5Context {
    /// The user-visible file (not a temporary name).
    let path: String
    let code: ImgConvError.Code

    /// Checks a return code (an identifier, `herr_t`, `htri_t`, or a count): negative is failure.
    /// - Throws: `ImgConvError` naming the file, `what` failed, and the HDF5 error stack.
    @discardableResult
    func check<T: BinaryInteger>(_ value: T, _ what: @autoclosure () -> String) throws -> T {
        assert(HDF5.isCurrentThread, "HDF5 called off its thread")
        if value < 0 {
            let stack = HDF5.takeErrorStack()
            // libhdf5 out of memory while writing is the machine's fault, not an I/O error (when
            // reading, a size in a corrupt file can ask for any amount: that stays the file's).
            let memory = code == .io && ImgConvError.library("HDF5", stack).code == .resources
            throw ImgConvError(memory ? .resources : code, path: path, "HDF5: \(what()): \(stack)")
        }
        return value
    }

    func fail(_ message: String) -> ImgConvError { ImgConvError(code, path: path, message) }
}

/// HDF5 identifiers owned together, closed in reverse order of opening (datasets before their
/// file). Only touched on the HDF5 thread.
final class HDF5Handles {
    enum Kind { case file, dataset, dataspace, datatype, propertyList, attribute, object }
    private var open: [(id: hid_t, kind: Kind)] = []

    /// Takes ownership of an identifier (already checked).
    @discardableResult
    func own(_ id: hid_t, _ kind: Kind) -> hid_t {
        open.append((id, kind))
        return id
    }

    private static func close(_ id: hid_t, _ kind: Kind) -> herr_t {
        switch kind {
        case .file: return H5Fclose(id)
        case .dataset: return H5Dclose(id)
        case .dataspace: return H5Sclose(id)
        case .datatype: return H5Tclose(id)
        case .propertyList: return H5Pclose(id)
        case .attribute: return H5Aclose(id)
        case .object: return H5Oclose(id)
        }
    }

    /// Closes one identifier early.
    func close(_ id: hid_t) -> herr_t {
        guard let at = open.lastIndex(where: { $0.id == id }) else { return 0 }
        let (_, kind) = open.remove(at: at)
        return Self.close(id, kind)
    }

    /// Closes everything; returns the first failure (everything is closed regardless).
    @discardableResult
    func closeAll() -> herr_t {
        assert(open.isEmpty || HDF5.isCurrentThread, "HDF5 called off its thread")
        var status: herr_t = 0
        while let (id, kind) = open.popLast() {
            let rc = Self.close(id, kind)
            if rc < 0 && status >= 0 { status = rc }
        }
        return status
    }

    deinit {
        if !open.isEmpty { _ = try? HDF5.run { closeAll() } }
    }
}

/// HDF5 types of imgconv's element types (little-endian in the file and in memory).
enum HDF5Types {
    static func type(for dtype: DType) -> hid_t {
        switch dtype {
        case .uint8: return imc_h5t_std_u8le()
        case .uint16: return imc_h5t_std_u16le()
        case .uint32: return imc_h5t_std_u32le()
        case .int8: return imc_h5t_std_i8le()
        case .int16: return imc_h5t_std_i16le()
        case .int32: return imc_h5t_std_i32le()
        case .int64: return imc_h5t_std_i64le()
        case .float32: return imc_h5t_ieee_f32le()
        case .float64: return imc_h5t_ieee_f64le()
        case .float16: return float16
        }
    }

    /// IEEE half precision, little-endian, as h5py defines it (HDF5 has no predefined one).
    /// Created once on the HDF5 thread and kept for the life of the process.
    private static let float16: hid_t = {
        let t = H5Tcopy(imc_h5t_ieee_f32le())
        _ = H5Tset_fields(t, 15, 10, 5, 0, 10)
        _ = H5Tset_size(t, 2)
        _ = H5Tset_ebias(t, 15)
        return t
    }()

    /// The element type of a stored numeric HDF5 type, or nil when imgconv does not read it.
    static func dtype(of type: hid_t) -> DType? {
        let size = H5Tget_size(type)
        switch H5Tget_class(type) {
        case H5T_INTEGER:
            let signed = H5Tget_sign(type) == H5T_SGN_2
            switch (size, signed) {
            case (1, false): return .uint8
            case (2, false): return .uint16
            case (4, false): return .uint32
            case (1, true): return .int8
            case (2, true): return .int16
            case (4, true): return .int32
            case (8, true): return .int64
            default: return nil
            }
        case H5T_FLOAT:
            return size == 2 ? .float16 : size == 4 ? .float32 : size == 8 ? .float64 : nil
        default:
            return nil
        }
    }

    /// A variable-length UTF-8 string type (caller owns it): what h5py reads back as `str`.
    static func makeVariableString(_ ctx: HDF5Context, _ handles: HDF5Handles) throws -> hid_t {
        let t = handles.own(try ctx.check(H5Tcopy(imc_h5t_c_s1()), "copy the string type"), .datatype)
        try ctx.check(H5Tset_size(t, imc_h5t_variable()), "make the string type variable-length")
        try ctx.check(H5Tset_cset(t, H5T_CSET_UTF8), "make the string type UTF-8")
        return t
    }
}
