import ImgConvCore

/// Reads the structure of a ZIP archive (with ZIP64 records) and streams its members, checking
/// each member's local header, size and CRC-32. Every field read from the file is bounds-checked
/// before use; a malformed archive is a `.corruptInput` error naming the file and the record.
public final class ZipReader {
    public struct Member: Sendable {
        public var name: String
        public var method: Int
        public var crc: UInt32
        public var compressedSize: Int
        public var size: Int
        public var localHeaderOffset: Int
        public var dataOffset: Int
    }

    public let file: ReadOnlyFile
    public private(set) var members: [Member] = []

    public init(path: String) throws {
        file = try ReadOnlyFile(path: path)
        try readDirectory()
    }

    private func fail(_ why: String) -> ImgConvError { ImgConvError(.corruptInput, path: file.path, "zip: \(why)") }

    /// A 64-bit offset, size or count from the file, capped at 2^60 (more than any file holds) so
    /// that sums of a few of them cannot overflow; the bounds checks then refuse the capped value.
    private static func field(_ value: UInt64) -> Int { Int(min(value, 1 << 60)) }

    private func readDirectory() throws {
        let tailLength = min(file.size, 22 + 65535)
        let tail = try file.read(at: file.size - tailLength, count: tailLength)
        let r = LEReader(tail)
        var eocd = -1
        var i = tail.count - 22
        while i >= 0 {
            if tail[i] == 0x50, tail[i + 1] == 0x4B, tail[i + 2] == 5, tail[i + 3] == 6 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record (not a zip file, or truncated)") }
        var entries = r.u16(eocd + 10)
        var cdSize = Int(r.u32(eocd + 12))
        var cdOffset = Int(r.u32(eocd + 16))
        let eocdPosition = file.size - tailLength + eocd
        // A ZIP64 locator sits right before the end record.
        if eocdPosition >= 20 {
            let loc = LEReader(try file.read(at: eocdPosition - 20, count: 20))
            if loc.u32(0) == 0x0706_4b50 {
                let z64Offset = Self.field(loc.u64(8))
                guard z64Offset >= 0, z64Offset + 56 <= eocdPosition - 20 else { throw fail("ZIP64 locator points outside the file") }
                let z = LEReader(try file.read(at: z64Offset, count: 56))
                guard z.u32(0) == 0x0606_4b50 else { throw fail("ZIP64 end record signature is wrong") }
                entries = Self.field(z.u64(32))
                cdSize = Self.field(z.u64(40))
                cdOffset = Self.field(z.u64(48))
            }
        }
        guard cdOffset >= 0, cdSize >= 0, cdOffset + cdSize <= file.size, cdSize <= 1 << 30 else {
            throw fail("central directory (offset \(cdOffset), size \(cdSize)) lies outside the file (\(file.size) bytes)")
        }
        guard entries <= cdSize / 46 else { throw fail("\(entries) entries cannot fit a \(cdSize)-byte central directory") }
        let cd = LEReader(try file.read(at: cdOffset, count: cdSize))
        var at = 0
        var names = Set<[UInt8]>()
        for _ in 0..<entries {
            guard cd.has(at, 46), cd.u32(at) == 0x0201_4b50 else { throw fail("central directory entry at \(cdOffset + at) is malformed") }
            let flags = cd.u16(at + 8)
            let method = cd.u16(at + 10)
            let crc = cd.u32(at + 16)
            var csize = Int(cd.u32(at + 20))
            var usize = Int(cd.u32(at + 24))
            let nameLength = cd.u16(at + 28), extraLength = cd.u16(at + 30), commentLength = cd.u16(at + 32)
            var lho = Int(cd.u32(at + 42))
            guard cd.has(at + 46, nameLength + extraLength + commentLength) else { throw fail("central directory entry runs past its end") }
            let nameBytes = Array(cd.bytes[(at + 46)..<(at + 46 + nameLength)])
            let name = String(decoding: nameBytes, as: UTF8.self)
            try refuseAmbiguous(name: name, bytes: nameBytes, flags: flags, seen: &names)
            // ZIP64 extra: only the fields whose 32-bit slot is 0xFFFFFFFF, in this order.
            var e = at + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let tag = cd.u16(e), len = cd.u16(e + 2)
                guard e + 4 + len <= extraEnd else { throw fail("member '\(name)': extra field runs past its end") }
                if tag == 1 {
                    var f = e + 4
                    func next() throws -> Int {
                        guard f + 8 <= e + 4 + len else { throw fail("member '\(name)': ZIP64 extra field too short") }
                        defer { f += 8 }
                        return Self.field(cd.u64(f))
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if lho == 0xFFFF_FFFF { lho = try next() }
                }
                e += 4 + len
            }
            guard lho >= 0, lho + 30 <= file.size else { throw fail("member '\(name)': local header offset \(lho) is outside the file") }
            let local = LEReader(try file.read(at: lho, count: 30))
            guard local.u32(0) == 0x0403_4b50 else { throw fail("member '\(name)': local header signature is wrong") }
            let localName = local.u16(26), localExtra = local.u16(28)
            let localNameBytes = try file.read(at: lho + 30, count: localName)
            guard localNameBytes == nameBytes else {
                throw fail("member '\(name)': local header names '\(String(decoding: localNameBytes, as: UTF8.self))'")
            }
            if local.u16(6) & Self.encryptedFlag != 0 { throw fail("member '\(name)' is encrypted (local header flag)") }
            let dataOffset = lho + 30 + localName + localExtra
            guard csize >= 0, usize >= 0, dataOffset + csize <= file.size else {
                throw fail("member '\(name)': data (\(csize) bytes at \(dataOffset)) runs past the end of the file")
            }
            guard method == 0 || method == 8 else { throw fail("member '\(name)': compression method \(method) is not stored or deflate") }
            if method == 0 && csize != usize { throw fail("member '\(name)': stored sizes differ (\(csize) vs \(usize))") }
            // Deflate cannot expand data more than about 1032 times: a larger claim is a bomb.
            if method == 8 && usize / 1032 > csize + 1 {
                throw fail("member '\(name)': claims \(usize) bytes from \(csize) compressed bytes, more than deflate can expand")
            }
            members.append(Member(name: name, method: method, crc: crc, compressedSize: csize, size: usize,
                                  localHeaderOffset: lho, dataOffset: dataOffset))
            at += 46 + nameLength + extraLength + commentLength
        }
    }

    /// General purpose flag bit 0: the member is encrypted (bit 6, strong encryption, comes with it).
    private static let encryptedFlag = 1

    /// Refuses a central directory entry that readers would not agree on: an encrypted member
    /// (numpy cannot read it; its bytes are not the tensor), or a second member of a name already
    /// seen (numpy's zipfile returns the last one, this reader the first: verify would check
    /// other bytes than a user loads).
    private func refuseAmbiguous(name: String, bytes: [UInt8], flags: Int, seen: inout Set<[UInt8]>) throws {
        if flags & Self.encryptedFlag != 0 { throw fail("member '\(name)' is encrypted") }
        guard seen.insert(bytes).inserted else {
            throw fail("member '\(name)' appears twice (readers differ on which one they read)")
        }
    }

    public func member(named name: String) -> Member? { members.first { $0.name == name } }

    /// A stream of the member's uncompressed bytes; at its end the size and CRC-32 are checked.
    public func open(_ member: Member) throws -> ByteStream {
        MemberStream(reader: self, member: member, inflater: member.method == 8 ? try Inflater() : nil)
    }
}

/// Uncompressed bytes of one member, with the CRC and size checked when the end is reached. A
/// stored member is read straight from a memory-mapped window of the file and lends its bytes
/// (`borrow`); a deflated one inflates in bounded pieces.
final class MemberStream: ByteStream {
    private let reader: ZipReader
    private let member: ZipReader.Member
    private let inflater: Inflater?
    private var raw: FileRegionStream
    private var crc = CRC32()
    private var produced = 0
    private var pending: [UInt8] = []
    private var pendingStart = 0
    // Small enough that one piece of deflated input inflates to a bounded size (at most ~1032x).
    private var input: [UInt8]
    private var finished = false

    init(reader: ZipReader, member: ZipReader.Member, inflater: Inflater?) {
        self.reader = reader
        self.member = member
        self.inflater = inflater
        input = inflater == nil ? [] : [UInt8](repeating: 0, count: 1 << 12)
        raw = FileRegionStream(file: reader.file, offset: member.dataOffset, length: member.compressedSize,
                               mapped: inflater == nil)
    }

    private func fail(_ why: String) -> ImgConvError {
        ImgConvError(.corruptInput, path: reader.file.path, "member '\(member.name)': \(why)")
    }

    /// A stored member's next bytes in place (see `ByteStream.borrow`); nil for a deflated one.
    func borrow(_ count: Int) throws -> UnsafeRawBufferPointer? {
        guard inflater == nil else { return nil }
        if finished { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard let lent = try raw.borrow(count) else { return nil }
        if lent.count > 0 {
            crc.update(lent)
            produced += lent.count
        }
        // Fewer than asked: the member's end, where its checks run (as `read` runs them).
        if lent.count < count { try finish() }
        return lent
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if inflater == nil {
            // Stored: no staging buffer, the bytes go from the file (mapped) to the caller.
            guard !finished, !buffer.isEmpty else { return 0 }
            let n = try raw.read(into: buffer)
            if n == 0 {
                try finish()
                return 0
            }
            crc.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            produced += n
            return n
        }
        while pendingStart >= pending.count && !finished {
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
            let n = try input.withUnsafeMutableBytes { try raw.read(into: $0) }
            if n == 0 {
                try finish()
                break
            }
            if let inflater {
                do {
                    _ = try input.withUnsafeBytes { buf in
                        // The 4 KiB input piece bounds what it inflates to: all of it is used.
                        try inflater.feed(UnsafeRawBufferPointer(rebasing: buf[0..<n])) { pending.append(contentsOf: $0) }
                    }
                } catch let e as ImgConvError {
                    throw fail(e.message)
                }
            } else {
                pending.append(contentsOf: input[0..<n])
            }
            if produced + pending.count > member.size {
                throw fail("holds more than the \(member.size) bytes its directory entry records")
            }
        }
        let take = min(buffer.count, pending.count - pendingStart)
        guard take > 0 else { return 0 }
        pending.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + pendingStart, byteCount: take)
        }
        crc.update(UnsafeRawBufferPointer(start: buffer.baseAddress, count: take))
        pendingStart += take
        produced += take
        return take
    }

    private func finish() throws {
        finished = true
        if let inflater, !inflater.ended { throw fail("deflate stream is truncated") }
        guard produced == member.size else {
            throw fail("holds \(produced) bytes, its directory entry records \(member.size)")
        }
        guard crc.value == member.crc else {
            throw fail(cFormat("CRC-32 mismatch (recorded %08x, computed %08x)", member.crc, crc.value))
        }
    }
}
import FoundationEssentials
import Glibc
