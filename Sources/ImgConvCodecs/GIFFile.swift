#if canImport(Glibc)
import Glibc
#endif
import CGIF
import ImgConvCore

/// A GIF colour table: the raw entries (3 bytes each, as many as the file declares) and the
/// 256-entry table Pillow converts with (entries past the file's are black).
struct GIFPalette {
    let raw: [UInt8]
    let table: [UInt8]

    init(_ raw: [UInt8]) {
        self.raw = raw
        var t = [UInt8](repeating: 0, count: 768)
        for i in 0..<min(768, raw.count) { t[i] = raw[i] }
        table = t
    }

    /// Pillow's `_is_palette_needed`: a table whose entry i is (i, i, i) throughout is no palette
    /// at all (the image is gray, mode L).
    var isNeeded: Bool {
        var i = 0
        while i + 2 < raw.count {
            let r = raw[i], g = raw[i + 1], b = raw[i + 2]
            if r != g || r != b || Int(r) != i / 3 { return true }
            i += 3
        }
        return false
    }

    /// Pillow's `_rgb` for disposal colours: an index past the table's entries reads entry 0.
    func rgb(_ index: Int) -> (UInt8, UInt8, UInt8) {
        let i = index * 3 + 3 > raw.count ? 0 : index
        guard i * 3 + 2 < raw.count else { return (0, 0, 0) }
        return (raw[i * 3], raw[i * 3 + 1], raw[i * 3 + 2])
    }
}

/// One image of a GIF as the records before it describe it, with what Pillow keeps from its
/// graphic control extensions.
struct GIFImageRecord {
    var left: Int
    var top: Int
    var width: Int
    var height: Int
    var interlaced: Bool
    /// Its local colour table, if it has one.
    var localPalette: GIFPalette?
    /// The transparent index of a graphic control extension before it (that says so).
    var transparency: Int?
    /// Pillow's `disposal_method` once this frame's extensions are read: a frame that specifies
    /// none keeps the method of the frame before (Pillow only sets a non-zero method).
    var disposal: Int

    var right: Int { left + width }
    var bottom: Int { top + height }
}

/// giflib's record-by-record reading over a `ByteSource`, as Pillow's `GifImageFile._seek`
/// walks the file: bytes between records that introduce nothing are skipped, the end of the data
/// or a trailer ends the images, a graphic control extension's transparent index and disposal
/// method are kept as Pillow keeps them. giflib reports errors as codes (no longjmp).
final class GIFFile {
    private var gif: UnsafeMutablePointer<GifFileType>
    private let reader: SequentialReader
    let screenWidth: Int
    let screenHeight: Int
    /// The logical screen's background index (Pillow's `info["background"]`: 0 without a global table).
    let background: Int
    let globalPalette: GIFPalette?
    /// Pillow's `disposal_method`, carried from frame to frame.
    private var disposal = 0
    /// Bytes read so far.
    var offset: Int { reader.offset }
    /// Images whose descriptor has been read.
    private(set) var imagesRead = 0
    /// The descriptor of the image whose data is next, when it has not been read or skipped.
    private var pending: GIFImageRecord?
    /// Its LZW minimum code size when giflib refused it (9...12, which Pillow reads): its data
    /// is then read by `WideLZW`.
    private var pendingWideCodes: Int?

    init(_ source: ByteSource) throws {
        reader = SequentialReader(source)
        var error: Int32 = 0
        let read: InputFunc = { file, buffer, count in
            guard let file, let buffer, count > 0 else { return 0 }
            let reader = Unmanaged<SequentialReader>.fromOpaque(file.pointee.UserData!).takeUnretainedValue()
            return Int32((try? reader.read(into: buffer, count: Int(count))) ?? 0)
        }
        guard let gif = DGifOpen(Unmanaged.passUnretained(reader).toOpaque(), read, &error) else {
            throw Self.error(error, while: "reading the screen descriptor")
        }
        self.gif = gif
        screenWidth = Int(gif.pointee.SWidth)
        screenHeight = Int(gif.pointee.SHeight)
        if let map = gif.pointee.SColorMap {
            globalPalette = GIFPalette(Self.bytes(map))
            background = Int(gif.pointee.SBackGroundColor)
        } else {
            globalPalette = nil
            background = 0
        }
    }

    deinit {
        var error: Int32 = 0
        DGifCloseFile(gif, &error)
    }

    private static func bytes(_ map: UnsafeMutablePointer<ColorMapObject>) -> [UInt8] {
        let count = max(0, Int(map.pointee.ColorCount))
        guard let colors = map.pointee.Colors else { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(count * 3)
        for i in 0..<count {
            out += [colors[i].Red, colors[i].Green, colors[i].Blue]
        }
        return out
    }

    static func error(_ code: Int32, while doing: String) -> ImgConvError {
        let text = GifErrorString(code).map { String(cString: $0) } ?? "error \(code)"
        return code == D_GIF_ERR_NOT_ENOUGH_MEM ? ImgConvError(.resources, "giflib: \(text)")
            : ImgConvError(.corruptInput, "giflib: \(text) (\(doing))")
    }

    private func failure(_ doing: String) -> ImgConvError { Self.error(gif.pointee.Error, while: doing) }

    /// The next image's descriptor (the previous image's data skipped if it was not read), or nil
    /// when there is none: a trailer, or the end of the data, where a record would begin or
    /// inside an extension. Damage to the descriptor of the first image is an error; of a later
    /// one, the end of the images.
    func nextImage() throws -> GIFImageRecord? {
        if pending != nil { try skipImageData() }
        var transparency: Int?
        while true {
            var introducer: UInt8 = 0
            let peek = try reader.peek(into: &introducer)
            guard peek, introducer != 0x3B else { return nil }   // end of data, or ';'
            guard introducer == 0x21 || introducer == 0x2C else {
                // Pillow skips a byte that introduces nothing ('!' and ',' do).
                try reader.skip(1)
                continue
            }
            var type = UNDEFINED_RECORD_TYPE
            guard DGifGetRecordType(gif, &type) != 0 else { throw failure("reading a record type") }
            if type == EXTENSION_RECORD_TYPE {
                var code: Int32 = 0
                var block: UnsafeMutablePointer<GifByteType>?
                guard DGifGetExtension(gif, &code, &block) != 0 else {
                    if imagesRead > 0 { return nil }
                    throw failure("reading an extension")
                }
                if code == 0xF9, let block {
                    // block[0] is the length, then Pillow's block[0...]: flags, delay (2), index.
                    let length = Int(block[0])
                    guard length >= 3 else { throw ImgConvError(.corruptInput, "graphic control extension of \(length) bytes") }
                    let flags = Int(block[1])
                    if flags & 1 != 0 {
                        guard length >= 4 else { throw ImgConvError(.corruptInput, "graphic control extension of \(length) bytes") }
                        transparency = Int(block[4])
                    }
                    let method = (flags & 0b0001_1100) >> 2
                    if method != 0 { disposal = method }
                }
                while block != nil {
                    guard DGifGetExtensionNext(gif, &block) != 0 else {
                        if imagesRead > 0 { return nil }
                        throw failure("reading an extension")
                    }
                }
                continue
            }
            let descriptorStart = reader.offset
            pendingWideCodes = nil
            if DGifGetImageHeader(gif) == 0 {
                // giflib refuses LZW code sizes over 8 after reading the byte that gives it;
                // Pillow reads up to 12. Such an image is kept, its data read by WideLZW.
                guard let bits = try wideCodeSize(descriptorStart) else {
                    if imagesRead > 0 { return nil }
                    throw failure("reading an image descriptor")
                }
                pendingWideCodes = bits
            }
            let d = gif.pointee.Image
            let record = GIFImageRecord(left: Int(d.Left), top: Int(d.Top), width: Int(d.Width), height: Int(d.Height),
                                        interlaced: d.Interlace, localPalette: d.ColorMap.map { GIFPalette(Self.bytes($0)) },
                                        transparency: transparency, disposal: disposal)
            pending = record
            imagesRead += 1
            return record
        }
    }

    /// The LZW minimum code size of the descriptor at `start` (after its `,`) when it is one giflib
    /// refuses and Pillow reads (9...12), and giflib stopped right after it.
    private func wideCodeSize(_ start: Int) throws -> Int? {
        let d = try reader.source.bytes(9, at: start)
        guard d.count == 9 else { return nil }
        let table = d[8] & 0x80 != 0 ? 3 << (Int(d[8] & 7) + 1) : 0
        let at = start + 9 + table
        guard reader.offset == at + 1, let size = try reader.source.bytes(1, at: at).first, (9...12).contains(size) else { return nil }
        return Int(size)
    }

    /// Skips the data of the image last returned by `nextImage` without decoding it.
    /// - Throws: when the data is cut short.
    func skipImageData() throws {
        guard pending != nil else { return }
        pending = nil
        if pendingWideCodes != nil {
            pendingWideCodes = nil
            try WideLZW.skipSubBlocks(reader)
            return
        }
        var size: Int32 = 0
        var block: UnsafeMutablePointer<GifByteType>?
        guard DGifGetCode(gif, &size, &block) != 0 else { throw failure("skipping image data") }
        while block != nil {
            guard DGifGetCodeNext(gif, &block) != 0 else { throw failure("skipping image data") }
        }
    }

    /// Decodes the image last returned by `nextImage`, row by row in the order they are stored
    /// (`row(y, pixels)` receives each row at its place: interlaced rows are placed as GIF's four
    /// passes lay them out).
    /// - Throws: giflib's error (data cut short, a broken LZW stream).
    func readImage(_ row: (Int, UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        guard let image = pending else { return }
        pending = nil
        let rows = image.interlaced ? Self.interlacedRows(image.height) : Array(0..<image.height)
        if let bits = pendingWideCodes {
            pendingWideCodes = nil
            var lzw = WideLZW(reader: reader, minimumCodeSize: bits)
            var line = [UInt8](repeating: 0, count: max(1, image.width))
            for y in rows {
                for x in 0..<image.width {
                    guard let v = try lzw.pixel() else {
                        throw ImgConvError(.corruptInput, "GIF image \(imagesRead - 1): LZW data ends before its pixels")
                    }
                    line[x] = v
                }
                try line.withUnsafeBufferPointer { try row(y, UnsafeBufferPointer(rebasing: $0[0..<image.width])) }
            }
            try lzw.finish()
            return
        }
        var line = [UInt8](repeating: 0, count: max(1, image.width))
        for y in rows {
            let ok = line.withUnsafeMutableBufferPointer { DGifGetLine(gif, $0.baseAddress, Int32(image.width)) }
            guard ok != 0 else { throw failure("decoding image \(imagesRead - 1)") }
            try line.withUnsafeBufferPointer { try row(y, UnsafeBufferPointer(rebasing: $0[0..<image.width])) }
        }
    }

    /// The rows of an interlaced image in the order they are stored: every 8th from 0, every 8th
    /// from 4, every 4th from 2, every 2nd from 1.
    static func interlacedRows(_ height: Int) -> [Int] {
        Array(stride(from: 0, to: height, by: 8)) + Array(stride(from: 4, to: height, by: 8))
            + Array(stride(from: 2, to: height, by: 4)) + Array(stride(from: 1, to: height, by: 2))
    }
}

extension SequentialReader {
    /// The next byte without moving on; false at the end of the source.
    func peek(into byte: inout UInt8) throws -> Bool {
        let n = try withUnsafeMutablePointer(to: &byte) { try read(into: $0, count: 1) }
        if n == 1 { rewind(1) }
        return n == 1
    }
}

/// LZW image data with a minimum code size of 9 to 12, which giflib refuses and Pillow reads:
/// codes up to 12 bits (13 right after a clear when the minimum is 12), the table stops growing
/// at 4,096 entries, and a literal code keeps its low 8 bits as the pixel (what Pillow stores).
struct WideLZW {
    private let reader: SequentialReader
    private let clear: Int
    private var codeSize: Int
    private var nextCode: Int
    private var previous: Int?
    private var first: UInt8 = 0
    private var bits: UInt64 = 0
    private var bitCount = 0
    private var blockLeft = 0
    private var ended = false
    private var sawTerminator = false
    private var suffix = [UInt8](repeating: 0, count: 4096)
    private var prefix = [Int](repeating: -1, count: 4096)
    private var length = [Int](repeating: 0, count: 4096)
    private var stack: [UInt8] = []

    init(reader: SequentialReader, minimumCodeSize: Int) {
        self.reader = reader
        clear = 1 << minimumCodeSize
        codeSize = minimumCodeSize + 1
        nextCode = clear + 2
    }

    /// The next pixel; nil when the data has ended.
    mutating func pixel() throws -> UInt8? {
        if let v = stack.popLast() { return v }
        while !ended {
            guard let code = try readCode() else { ended = true; break }
            if code == clear {
                codeSize = Int(clear.trailingZeroBitCount) + 1
                nextCode = clear + 2
                previous = nil
                continue
            }
            if code == clear + 1 { ended = true; break }
            guard let prev = previous else {
                guard code < clear else { throw ImgConvError(.corruptInput, "GIF: broken LZW data (code \(code) after a clear)") }
                previous = code
                first = UInt8(truncatingIfNeeded: code)
                return first
            }
            guard code <= nextCode else { throw ImgConvError(.corruptInput, "GIF: broken LZW data (code \(code) past the table)") }
            var c = code
            var out: [UInt8] = []
            if code == nextCode {
                out.append(first(of: prev))
                c = prev
            }
            while c >= clear {
                guard c < 4096, prefix[c] >= 0 else { throw ImgConvError(.corruptInput, "GIF: broken LZW data") }
                out.append(suffix[c])
                c = prefix[c]
            }
            out.append(UInt8(truncatingIfNeeded: c))
            first = UInt8(truncatingIfNeeded: c)
            if nextCode < 4096 {
                suffix[nextCode] = first
                prefix[nextCode] = prev
                if nextCode == (1 << codeSize) - 1 && codeSize < 12 { codeSize += 1 }
                nextCode += 1
            }
            previous = code
            stack = out   // reversed order: popLast gives the string from its start
            return stack.popLast()
        }
        return nil
    }

    /// The first pixel of the string of `code`.
    private func first(of code: Int) -> UInt8 {
        var c = code
        while c >= clear, c < 4096, prefix[c] >= 0 { c = prefix[c] }
        return UInt8(truncatingIfNeeded: c)
    }

    private mutating func readCode() throws -> Int? {
        while bitCount < codeSize {
            if blockLeft == 0 {
                var size: UInt8 = 0
                guard try withUnsafeMutablePointer(to: &size, { try reader.read(into: $0, count: 1) }) == 1 else {
                    throw ImgConvError(.corruptInput, "GIF: image data cut short")
                }
                if size == 0 { sawTerminator = true; return nil }
                blockLeft = Int(size)
            }
            var byte: UInt8 = 0
            guard try withUnsafeMutablePointer(to: &byte, { try reader.read(into: $0, count: 1) }) == 1 else {
                throw ImgConvError(.corruptInput, "GIF: image data cut short")
            }
            blockLeft -= 1
            bits |= UInt64(byte) << UInt64(bitCount)
            bitCount += 8
        }
        let code = Int(bits & ((1 << UInt64(codeSize)) - 1))
        bits >>= UInt64(codeSize)
        bitCount -= codeSize
        return code
    }

    /// Skips what is left of the image's data, up to its terminating empty sub-block.
    mutating func finish() throws {
        if blockLeft > 0 { try reader.skip(blockLeft) }
        blockLeft = 0
        if !sawTerminator { try Self.skipSubBlocks(reader) }
    }

    /// Skips sub-blocks up to and including the empty one.
    static func skipSubBlocks(_ reader: SequentialReader) throws {
        while true {
            var size: UInt8 = 0
            guard try withUnsafeMutablePointer(to: &size, { try reader.read(into: $0, count: 1) }) == 1 else {
                throw ImgConvError(.corruptInput, "GIF: image data cut short")
            }
            if size == 0 { return }
            try reader.skip(Int(size))
        }
    }
}
