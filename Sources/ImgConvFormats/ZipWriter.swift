import ImgConvCore

/// Writes a ZIP archive as numpy's `savez` does: every member with ZIP64 sizes, CRC and sizes
/// patched into the local header once the member ends (the output is a seekable temporary file),
/// and ZIP64 end records, so members over 4 GiB are valid. Timestamps are fixed (1980-01-01) so
/// outputs are reproducible.
final class ZipWriter {
    struct Entry {
        var name: [UInt8]
        var method: Int
        var crc: UInt32
        var compressedSize: Int
        var size: Int
        var offset: Int
    }

    let file: AtomicOutputFile
    private(set) var entries: [Entry] = []

    static let versionNeeded = 45   // ZIP64
    static let dosDate = 0x0021     // 1980-01-01
    static let maxU32 = 0xFFFF_FFFF

    init(file: AtomicOutputFile) { self.file = file }

    /// Starts a member and returns the offset of its data.
    func beginMember(name: String, compressed: Bool) throws -> Int {
        let nameBytes = Array(name.utf8)
        var h = LEBytes()
        h.u32(UInt32(0x0403_4b50))
        h.u16(Self.versionNeeded)
        h.u16(flags(nameBytes))
        h.u16(compressed ? 8 : 0)
        h.u16(0)
        h.u16(Self.dosDate)
        h.u32(UInt32(0))
        h.u32(Self.maxU32)
        h.u32(Self.maxU32)
        h.u16(nameBytes.count)
        h.u16(20)
        h.raw(nameBytes)
        h.u16(1)       // ZIP64 extra: sizes patched in endMember
        h.u16(16)
        h.u64(0)
        h.u64(0)
        entries.append(Entry(name: nameBytes, method: compressed ? 8 : 0, crc: 0, compressedSize: 0, size: 0, offset: file.offset))
        try file.write(h.bytes)
        return file.offset
    }

    /// Ends the current member: records and patches its CRC and sizes.
    func endMember(crc: UInt32, compressedSize: Int, size: Int) throws {
        var e = entries.removeLast()
        e.crc = crc
        e.compressedSize = compressedSize
        e.size = size
        entries.append(e)
        var c = LEBytes()
        c.u32(crc)
        try file.patch(c.bytes, at: e.offset + 14)
        var s = LEBytes()
        s.u64(size)
        s.u64(compressedSize)
        try file.patch(s.bytes, at: e.offset + 30 + e.name.count + 4)
    }

    private func flags(_ name: [UInt8]) -> Int { name.contains { $0 >= 0x80 } ? 0x0800 : 0 }

    /// Writes the central directory and the end records.
    func finish() throws {
        let cdStart = file.offset
        var cd = LEBytes()
        for e in entries {
            cd.u32(UInt32(0x0201_4b50))
            cd.u16((3 << 8) | Self.versionNeeded)
            cd.u16(Self.versionNeeded)
            cd.u16(flags(e.name))
            cd.u16(e.method)
            cd.u16(0)
            cd.u16(Self.dosDate)
            cd.u32(e.crc)
            cd.u32(Self.maxU32)
            cd.u32(Self.maxU32)
            cd.u16(e.name.count)
            cd.u16(28)
            cd.u16(0)
            cd.u16(0)
            cd.u16(0)
            cd.u32(UInt32(0o100644) << 16)
            cd.u32(Self.maxU32)
            cd.raw(e.name)
            cd.u16(1)
            cd.u16(24)
            cd.u64(e.size)
            cd.u64(e.compressedSize)
            cd.u64(e.offset)
        }
        let cdSize = cd.bytes.count
        let zip64End = cdStart + cdSize
        var end = LEBytes()
        end.u32(UInt32(0x0606_4b50))
        end.u64(44)
        end.u16((3 << 8) | Self.versionNeeded)
        end.u16(Self.versionNeeded)
        end.u32(0)
        end.u32(0)
        end.u64(entries.count)
        end.u64(entries.count)
        end.u64(cdSize)
        end.u64(cdStart)
        end.u32(UInt32(0x0706_4b50))
        end.u32(0)
        end.u64(zip64End)
        end.u32(1)
        end.u32(UInt32(0x0605_4b50))
        end.u16(0)
        end.u16(0)
        end.u16(min(entries.count, 0xFFFF))
        end.u16(min(entries.count, 0xFFFF))
        end.u32(min(cdSize, Self.maxU32))
        end.u32(Self.maxU32)
        end.u16(0)
        try file.write(cd.bytes)
        try file.write(end.bytes)
    }
}

/// Streams one ZIP member whose data starts with an NPY header that may be rewritten at the end
/// (the image count is final only when every image has been decoded). Stored members patch the
/// header in place; deflated ones carry it in a stored deflate block of fixed size, so it can be
/// patched too. The CRC is combined from the header's and the data's.
final class NPYMemberWriter {
    private let zip: ZipWriter
    private let compressed: Bool
    private let headerLength: Int
    private let headerOffset: Int
    private var compressedBytes = 0
    private var deflater: ParallelDeflater?
    private let digest = BackgroundDigest(crc: true)
    /// The tensor checksum of the data (after the header), known once `finish` has run.
    private(set) var dataDigest = ""
    private(set) var dataLength = 0

    init(zip: ZipWriter, name: String, header: [UInt8], compressed: Bool, level: Int32, threads: Int = 1) throws {
        self.zip = zip
        self.compressed = compressed
        headerLength = header.count
        let start = try zip.beginMember(name: name, compressed: compressed)
        if compressed {
            // A non-final stored block: BFINAL=0, BTYPE=00, then LEN and its complement.
            var block = LEBytes()
            block.raw([0x00])
            block.u16(header.count)
            block.u16(~header.count & 0xFFFF)
            try zip.file.write(block.bytes)
            headerOffset = start + 5
            compressedBytes = 5 + header.count
            deflater = ParallelDeflater(level: level, threads: threads)
        } else {
            headerOffset = start
            compressedBytes = header.count
        }
        try zip.file.write(header)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        dataLength += bytes.count
        if let deflater {
            digest.update(bytes)
            try deflater.feed(bytes) { piece in
                compressedBytes += piece.count
                try zip.file.write(piece)
            }
        } else {
            compressedBytes += bytes.count
            try digest.update(bytes, alongside: { try zip.file.write(bytes) })
        }
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Writes an array the member may keep until it is hashed (large ones are not copied).
    func write(owned bytes: [UInt8]) throws {
        guard deflater == nil else { return try write(bytes) }
        digest.update(owned: bytes)
        dataLength += bytes.count
        compressedBytes += bytes.count
        try bytes.withUnsafeBytes { try zip.file.write($0) }
    }

    /// Ends the member with its final header (same length as the first one).
    func finish(header: [UInt8]) throws {
        precondition(header.count == headerLength, "NPY header length changed")
        if let deflater {
            try deflater.finish { piece in
                compressedBytes += piece.count
                try zip.file.write(piece)
            }
        }
        try zip.file.patch(header, at: headerOffset)
        var headerCRC = CRC32()
        headerCRC.update(header)
        let (dataDigest, dataCRC) = digest.finish()
        self.dataDigest = dataDigest
        let crc = CRC32.combine(headerCRC.value, dataCRC, lengthOfB: dataLength)
        try zip.endMember(crc: crc, compressedSize: compressedBytes, size: headerLength + dataLength)
    }
}
