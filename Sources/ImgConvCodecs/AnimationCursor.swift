#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore

/// A decoder part-way through an animation (GIF, animated WebP). Frame k of an animation is
/// composed from every frame before it, so a frame decoded from the start costs k frames; a
/// cursor left after frame k gives frame k + 1 for the cost of one.
protocol AnimationCursor: AnyObject {
    /// The file the cursor decodes (compared byte for byte before it is reused).
    var data: UnsafeBufferPointer<UInt8> { get }
    /// Frames composed so far: the next frame to come is this one.
    var framesDone: Int { get }
    /// Bytes the cursor holds (its copy of the file, its canvases).
    var footprint: Int { get }
    /// Frames in the file.
    var frameCount: Int { get }
}

/// The animations of one run with `--frames all` (a conversion, a `verify --against`), shared by
/// its threads, within a memory budget:
/// - cursors: after a frame, the decoder is put back, and a request for a later frame of the same
///   file resumes the nearest one before it (frames asked for in order cost one frame each); a
///   request waits for a cursor of its file that is in use and started before its frame, rather
///   than compose the same frames again;
/// - frames: the frames a cursor passes on its way to the one asked for are kept, conformed to the
///   tensor, for the request that will come for them (frames asked for in any order, as
///   `--shuffle` and splits ask for them, are each decoded about once).
/// Past the budget the oldest cursors go and frames are no longer kept: the output is the same,
/// decoding only costs more. Files are known by the SHA-256 of their bytes.
/// `@unchecked Sendable`: every mutable property is read and written with `released` locked (`locked`).
public final class AnimationPool: @unchecked Sendable {
    /// Bytes of cursors, and of kept frames, each (a sixteenth of the memory budget, at most 256 MiB).
    public let budget: Int
    private var cursors: [(key: String, cursor: AnimationCursor)] = []   // least recently used first
    private var cursorBytes = 0
    private var busy: [(id: Int, key: String, start: Int)] = []
    private var nextID = 0
    private var frames: [FrameKey: (value: Any, bytes: Int)] = [:]
    private var frameBytes = 0
    /// Frames delivered already, by file: not worth keeping when a cursor passes them.
    private var delivered: [String: Set<Int>] = [:]
    /// Guards every mutable property; signalled when a cursor is released.
    private let released = ThreadCondition()

    struct FrameKey: Hashable {
        var key: String
        var frame: Int
    }

    public init(budget: Int = min(256 << 20, DecodeLimits.memoryBudget / 16)) {
        self.budget = budget
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T { try released.withLock(body) }

    /// What a request for frame `frame` of the file `key` starts from.
    public enum Start {
        /// The frame, kept when a cursor passed it.
        case kept(Any)
        /// A request to decode it (resuming a cursor, or from the start); `release` it after.
        case decode(FrameRequest)
    }

    /// Frame `frame` of file `key`: kept already, or a request holding the nearest cursor before
    /// it (waiting while a cursor of the file that started before it is in use).
    public func acquire(key: String, frame: Int) -> Start {
        released.lock()
        defer { released.unlock() }
        let fk = FrameKey(key: key, frame: frame)
        while true {
            if let kept = frames.removeValue(forKey: fk) {
                frameBytes -= kept.bytes
                delivered[key, default: []].insert(frame)
                return .kept(kept.value)
            }
            var best: Int?
            for (i, c) in cursors.enumerated() where c.key == key && c.cursor.framesDone <= frame {
                if best.map({ cursors[$0].cursor.framesDone < c.cursor.framesDone }) ?? true { best = i }
            }
            if let i = best {
                let c = cursors.remove(at: i)
                cursorBytes -= c.cursor.footprint
                return .decode(request(key: key, frame: frame, cursor: c.cursor))
            }
            guard busy.contains(where: { $0.key == key && $0.start <= frame }) else {
                return .decode(request(key: key, frame: frame, cursor: nil))
            }
            released.wait()
        }
    }

    private func request(key: String, frame: Int, cursor: AnimationCursor?) -> FrameRequest {
        nextID += 1
        busy.append((nextID, key, cursor?.framesDone ?? 0))
        return FrameRequest(pool: self, id: nextID, key: key, frame: frame, cursor: cursor)
    }

    /// Ends a request: its cursor (if it has frames left) goes back to the pool, the oldest
    /// cursors go when the pool is over its budget, and waiting requests look again.
    func release(_ request: FrameRequest, delivered ok: Bool) {
        locked {
            busy.removeAll { $0.id == request.id }
            if ok { delivered[request.key, default: []].insert(request.frame) }
            if let c = request.cursor, c.framesDone < c.frameCount {
                cursors.append((request.key, c))
                cursorBytes += c.footprint
                while cursorBytes > budget, !cursors.isEmpty {
                    cursorBytes -= cursors.removeFirst().cursor.footprint
                }
            }
            request.cursor = nil
            request.passing = nil   // a closure that holds the request would keep it alive
            released.broadcast()
        }
    }

    /// Whether frame `frame` of `key` is worth keeping: not kept, not delivered yet.
    func wants(key: String, frame: Int) -> Bool {
        locked {
            frames[FrameKey(key: key, frame: frame)] == nil && delivered[key]?.contains(frame) != true
        }
    }

    /// Keeps `value` (`bytes` long) as frame `frame` of file `key`, unless the frames kept are at
    /// their budget; waiting requests look again.
    func keep(_ value: Any, bytes: Int, key: String, frame: Int) {
        locked {
            let fk = FrameKey(key: key, frame: frame)
            guard frames[fk] == nil, delivered[key]?.contains(frame) != true, frameBytes + bytes <= budget else { return }
            frames[fk] = (value, bytes)
            frameBytes += bytes
            released.broadcast()
        }
    }
}

/// A request for one frame of an animation in an `AnimationPool`: the cursor it resumes (the
/// decoder takes it, and puts back the one it leaves), where the frames it passes go.
/// `@unchecked Sendable`: a request belongs to the one decoding thread the pool handed it to;
/// `cursor` and `passing` change only on that thread, until `release` gives it back under the
/// pool's mutex.
public final class FrameRequest: @unchecked Sendable {
    let pool: AnimationPool
    let id: Int
    let key: String
    let frame: Int
    var cursor: AnimationCursor?
    /// Called with each frame passed on the way (when the pool wants it), orientation applied;
    /// dropped when the request is released.
    public var passing: ((Int, PixelBuffer) -> Void)?

    init(pool: AnimationPool, id: Int, key: String, frame: Int, cursor: AnimationCursor?) {
        self.pool = pool
        self.id = id
        self.key = key
        self.frame = frame
        self.cursor = cursor
    }

    /// Whether frame `i` passed on the way is worth converting and keeping.
    func wants(_ i: Int) -> Bool { passing != nil && pool.wants(key: key, frame: i) }

    /// Keeps a converted frame passed on the way.
    public func keep(_ value: Any, bytes: Int, frame i: Int) { pool.keep(value, bytes: bytes, key: key, frame: i) }

    /// Ends the request (`delivered`: its frame was produced).
    public func release(delivered: Bool) { pool.release(self, delivered: delivered) }
}

/// The bytes of a file, at an address that stays put as long as the object lives (what a
/// decoder that keeps pointers into its input needs).
final class PinnedBytes {
    let buffer: UnsafeBufferPointer<UInt8>

    init(_ bytes: [UInt8]) {
        let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, bytes.count))
        _ = copy.initialize(from: bytes)
        buffer = UnsafeBufferPointer(start: copy.baseAddress, count: bytes.count)
    }

    deinit { UnsafeMutableBufferPointer(mutating: buffer).deallocate() }
}
