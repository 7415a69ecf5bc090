import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import ImgConvCore
import CSystem
import Foundation

final class CoreTests: XCTestCase {
    /// The two helpers that stand in for Foundation's: trimming as `.whitespaces` did (NBSP too,
    /// and line ends), and printf-style numbers, also past the first buffer and for 64-bit Ints.
    func testTrimmingAndCFormat() {
        XCTAssertEqual(" \u{A0}\tcat\u{2009}\r\n".trimmingWhitespace(), "cat")
        XCTAssertEqual("a b".trimmingWhitespace(), "a b")
        XCTAssertEqual(" \t ".trimmingWhitespace(), "")
        XCTAssertEqual(Substring("  x  ").trimmingWhitespace(), "x")
        XCTAssertEqual(cFormat("%.1f MiB", 1.25 * 1024), "1280.0 MiB")
        XCTAssertEqual(cFormat("part-%05ld-of-%05ld.", 3, 12), "part-00003-of-00012.")
        XCTAssertEqual(cFormat("%ld", Int.max), "9223372036854775807")
        XCTAssertEqual(cFormat("0x%02x %08x", UInt8(0xAB), UInt32(0xDEADBEEF)), "0xab deadbeef")
        let long = cFormat("%0300ld", 7)
        XCTAssertEqual(long.count, 300)
        XCTAssertTrue(long.hasSuffix("07") && long.hasPrefix("000"))
    }

    func testALibraryOutOfMemoryIsTheHostsFaultNotACorruptFile() {
        for reason in ["out of memory", "Out of memory", "Insufficient memory to process file", "Memory allocation failure",
                       "No space for strip arrays"] {
            let e = ImgConvError.library("libx", reason)
            XCTAssertEqual(e.code, .resources, reason)
            XCTAssertTrue(e.isHostFault)
            XCTAssertEqual(e.code.exitCode, 71)
        }
        let corrupt = ImgConvError.library("libpng", "IDAT: CRC error")
        XCTAssertEqual(corrupt.code, .corruptInput)
        XCTAssertFalse(corrupt.isHostFault)
        XCTAssertEqual(inputErrorCode(EMFILE), .resources)
        XCTAssertEqual(inputErrorCode(ENOENT), .notFound)
    }

    func testGrayFromColourEightBitIsLumaOfEveryPixel() {
        // The 8-bit path is C (imc_luma8); it must be the Swift formula, RGB and RGBA alike.
        var rng = SystemRandomNumberGenerator()
        for channels in [3, 4] {
            let count = 1031
            let bytes = (0..<(count * channels)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let image = PixelBuffer(width: count, height: 1, channels: channels, depth: .eight, bytes: bytes)
            let gray = ColorConverter.convert(image, toChannels: 1)
            XCTAssertEqual(gray.channels, 1)
            for i in 0..<count {
                let p = i * channels
                XCTAssertEqual(gray.bytes[i], ColorConverter.luma(bytes[p], bytes[p + 1], bytes[p + 2]), "pixel \(i) of \(channels)")
            }
        }
        // And back: gray to RGB and RGBA (C too), every sample the gray one, alpha opaque.
        let grayBytes = (0..<997).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let grayImage = PixelBuffer(width: 997, height: 1, channels: 1, depth: .eight, bytes: grayBytes)
        for target in [3, 4] {
            let out = ColorConverter.convert(grayImage, toChannels: target)
            for i in 0..<997 {
                XCTAssertEqual(Array(out.bytes[(i * target)..<(i * target + 3)]), [grayBytes[i], grayBytes[i], grayBytes[i]])
                if target == 4 { XCTAssertEqual(out.bytes[i * 4 + 3], 255) }
            }
        }
        let empty = PixelBuffer(width: 0, height: 0, channels: 3, depth: .eight, bytes: [])
        XCTAssertEqual(ColorConverter.convert(empty, toChannels: 1).bytes.count, 0)
    }

    func testReadAheadStartsOnlyOnColdFiles() throws {
        let dir = NSTemporaryDirectory() + "/imgconv-readahead-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = (0..<100).map { "\(dir)/\($0).bin" }
        for p in paths { XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data(repeating: 7, count: 64 << 10))) }
        // Warm (just written): no read-ahead.
        let warm = ReadAhead(count: paths.count) { paths[$0] }
        for i in 0..<paths.count { XCTAssertNil(warm.before(i)) }
        XCTAssertFalse(warm.started)
        // Cold: written back and dropped from the page cache, file by file.
        func dropAll() {
            for p in paths {
                let fd = open(p, O_RDONLY)
                XCTAssertGreaterThanOrEqual(fd, 0)
                fsync(fd)
                _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
                close(fd)
            }
        }
        dropAll()
        // The descriptor limit the read-ahead sees: with descriptors to spare it keeps the files
        // it opens for their workers, under a low limit it closes each once hinted.
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var saved = rlimit()
        XCTAssertEqual(getrlimit(resource, &saved), 0)
        defer { _ = setrlimit(resource, &saved) }
        func softLimit(_ n: rlim_t) throws {
            var l = saved
            l.rlim_cur = min(n, saved.rlim_max)
            XCTAssertEqual(setrlimit(resource, &l), 0)
            guard l.rlim_cur == n else { throw XCTSkip("the hard descriptor limit is below \(n)") }
        }
        try softLimit(max(saved.rlim_cur, ReadAhead.keepingLimit))
        // Residency is read with mincore, which reads nothing: a probe with a read (even
        // RWF_NOWAIT's) may itself start reading the file in.
        func resident(_ path: String) -> Bool {
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            guard let map = mmap(nil, 64 << 10, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { return false }
            defer { munmap(map, 64 << 10) }
            var pages = [UInt8](repeating: 0, count: 16)
            return mincore(map, 64 << 10, &pages) == 0 && pages.allSatisfy { $0 & 1 == 1 }
        }
        guard !resident(paths[0]) else {
            throw XCTSkip("this file system keeps files in memory (tmpfs?): no file can be made cold here")
        }
        let descriptors = { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }
        let before = descriptors()
        var cold: ReadAhead? = ReadAhead(count: paths.count, depth: 16) { paths[$0] }
        let first = cold!.before(0)
        XCTAssertTrue(cold!.started)
        XCTAssertEqual(first?.path, paths[0], "the worker gets its file opened")
        XCTAssertEqual(descriptors(), before + 16, "the next 15 are open, waiting for their workers")
        // The next files were asked for: they come into the page cache without anyone reading them.
        var cached = 0
        for _ in 0..<200 {
            cached = (1..<16).filter { resident(paths[$0]) }.count
            if cached == 15 { break }
            usleep(10_000)
        }
        XCTAssertEqual(cached, 15)
        XCTAssertFalse(resident(paths[40]), "only `depth` files ahead are asked for")
        // Each worker is handed its own file, read through it; one that came by before its file
        // was opened (3 here, never asked for) opens it itself.
        for i in [1, 2, 4, 8] {
            let file = cold!.before(i)
            XCTAssertEqual(file?.path, paths[i])
            XCTAssertEqual(try file?.prefix(4), [7, 7, 7, 7])
        }
        XCTAssertEqual(cold!.before(16)?.path, paths[16], "opened by its own call: its stretch starts there")
        // 3, 5-7, 9-15 were opened and not taken, 17-31 wait: all closed with the read-ahead.
        XCTAssertGreaterThan(descriptors(), before + 1)
        cold = nil
        XCTAssertEqual(descriptors(), before + 1, "only `first` is still open")
        _ = first
        // Under `ulimit -n 64`: the files are hinted, and closed (each worker opens its own).
        dropAll()
        guard !resident(paths[1]) else { throw XCTSkip("the files could not be made cold again") }
        try softLimit(64)
        let low = ReadAhead(count: paths.count, depth: 16) { paths[$0] }
        let again = low.before(0)
        XCTAssertEqual(again?.path, paths[0])
        XCTAssertEqual(descriptors(), before + 2, "`first`, `again`, none kept")
        for _ in 0..<200 {
            cached = (1..<16).filter { resident(paths[$0]) }.count
            if cached == 15 { break }
            usleep(10_000)
        }
        XCTAssertEqual(cached, 15, "hinted all the same")
        XCTAssertNil(low.before(1), "its worker opens it")
    }

    func testCodePointOrder() {
        let names = ["É", "a", "B", "9", "10", "e\u{301}"]
        XCTAssertEqual(names.sorted(by: codePointLess), ["10", "9", "B", "a", "e\u{301}", "É"])
        // Beyond the BMP, and prefixes: the order of the code points themselves.
        let more = ["\u{1F600}", "\u{FFFF}", "ab", "a", "", "\u{10000}", "a\u{0}"]
        let byScalars = more.sorted { $0.unicodeScalars.map(\.value).lexicographicallyPrecedes($1.unicodeScalars.map(\.value)) }
        XCTAssertEqual(more.sorted(by: codePointLess), byScalars)
        XCTAssertEqual(byScalars, ["", "a", "a\u{0}", "ab", "\u{FFFF}", "\u{10000}", "\u{1F600}"])
    }

    func testLumaIsPillowsFormula() {
        XCTAssertEqual(ColorConverter.luma(UInt8(255), UInt8(255), UInt8(255)), 255)
        let expected: Int = (10 * 19595 + 200 * 38470 + 30 * 7471 + 0x8000) >> 16
        XCTAssertEqual(Int(ColorConverter.luma(UInt8(10), UInt8(200), UInt8(30))), expected)
    }

    func testResizeToSameSizeIsIdentityAndWeightsSumToOne() {
        let img = PixelBuffer(width: 3, height: 2, channels: 1, depth: .eight, bytes: [0, 50, 100, 150, 200, 250])
        XCTAssertEqual(Resizer.resize(img, width: 3, height: 2).bytes, img.bytes)
        let c = Resizer.coefficients(inSize: 100, outSize: 7)
        for o in 0..<7 {
            let sum = (0..<c.count[o]).map { c.weights[o * c.taps + $0] }.reduce(0, +)
            XCTAssertEqual(sum, 1, accuracy: 1e-9)
        }
        let flat = PixelBuffer(width: 10, height: 10, channels: 1, depth: .eight, bytes: [UInt8](repeating: 77, count: 100))
        XCTAssertEqual(Resizer.resize(flat, width: 3, height: 4).bytes, [UInt8](repeating: 77, count: 12))
    }

    func testEightBitWidensByTimes257() throws {
        let plan = ImagePlan(width: 1, height: 1, channels: 1, depth: .sixteen)
        let out = try plan.conform(PixelBuffer(width: 1, height: 1, channels: 1, depth: .eight, bytes: [255]))
        XCTAssertEqual(out, [0xFF, 0xFF])
    }

    func testPipelineKeepsOrderWithManyThreads() throws {
        var seen: [Int] = []
        try runOrderedPipeline(count: 500, jobs: 4, window: 8, work: { i -> Int in
            if i % 7 == 0 { usleep(200) }
            return i * 2
        }, consume: { i, r in
            XCTAssertEqual(try r.get(), i * 2)
            seen.append(i)
        })
        XCTAssertEqual(seen, Array(0..<500))
    }

    func testBatchedPipelineKeepsOrderAndBoundsWhatIsInFlight() throws {
        // Workers take 16 indices at a time; never more than the window is taken but not consumed.
        let lock = NSLock()
        var taken = 0, consumed = 0, most = 0
        var seen: [Int] = []
        try runOrderedPipeline(count: 3001, jobs: 3, window: 100, batch: 16, work: { i -> Int in
            lock.lock(); taken += 1; most = max(most, taken - consumed); lock.unlock()
            if i % 97 == 0 { usleep(300) }
            return i &* 31
        }, consume: { i, r in
            XCTAssertEqual(try r.get(), i &* 31)
            seen.append(i)
            lock.lock(); consumed += 1; lock.unlock()
        })
        XCTAssertEqual(seen, Array(0..<3001))
        XCTAssertLessThanOrEqual(most, 100 + 16)
    }

    func testOrderedWorkDeliversInSubmissionOrderOnItsOwnThreads() throws {
        // Jobs that finish out of order (the early ones sleep) are handed back in order, never
        // more than `limit` outstanding; an error is handed back at its place.
        let work = OrderedWork<Int>(limit: 4)
        var got: [Int] = []
        for i in 0..<200 {
            try work.submit({ if i % 5 == 0 { usleep(300) }; return i * 3 }, deliver: { got.append($0) })
            XCTAssertGreaterThanOrEqual(got.count, i + 1 - 4)
        }
        try work.finish(deliver: { got.append($0) })
        XCTAssertEqual(got, (0..<200).map { $0 * 3 })
        let failing = OrderedWork<Int>(limit: 2)
        var before: [Int] = []
        XCTAssertThrowsError(try {
            for i in 0..<10 {
                try failing.submit({ if i == 3 { throw ImgConvError(.resources, "no memory") }; return i },
                                   deliver: { before.append($0) })
            }
            try failing.finish(deliver: { before.append($0) })
        }())
        XCTAssertEqual(before, [0, 1, 2])
    }

    func testMemoryCeilingIsTheSmallestLimit() {
        let c = MemoryCeiling.current()
        XCTAssertGreaterThan(c.bytes, 0)
        XCTAssertLessThanOrEqual(c.bytes, MemoryCeiling.physical)
        if let cg = MemoryCeiling.cgroupLimit { XCTAssertLessThanOrEqual(c.bytes, cg) }
        if let limit = MemoryCeiling.addressSpaceLimit { XCTAssertLessThanOrEqual(c.bytes, limit) }
        XCTAssertNoThrow(try MemoryCeiling.reserve(1 << 20, for: "a test"))
        XCTAssertThrowsError(try MemoryCeiling.reserve(Int.max / 2, for: "a test")) { error in
            XCTAssertEqual((error as? ImgConvError)?.code, .resources)
        }
    }

    func testPipelineStopsAtFirstConsumerError() {
        XCTAssertThrowsError(try runOrderedPipeline(count: 1000, jobs: 2, window: 4, work: { $0 }, consume: { i, _ in
            if i == 10 { throw ImgConvError(.corruptInput, path: "x", "stop") }
        }))
    }

    /// The manifest's strings: escapes where JSON needs them (quote, backslash, control
    /// characters), every other byte as it is, and what JSONDecoder reads back is the string.
    func testJSONTextStringEscapes() throws {
        let cases: [(String, String)] = [
            ("plain/a.png", #""plain/a.png""#),
            ("q\"b\\s", #""q\"b\\s""#),
            ("n\nr\rt\t", #""n\nr\rt\t""#),
            ("c\u{01}\u{1F}x", #""c\u0001\u001fx""#),
            ("caf\u{E9} \u{1F600}", "\"caf\u{E9} \u{1F600}\""),
            ("", #""""#),
            ("\"", #""\"""#),
        ]
        for (value, expected) in cases {
            var text = JSONText()
            text.string(value)
            XCTAssertEqual(String(decoding: text.bytes, as: UTF8.self), expected)
            XCTAssertEqual(try JSONDecoder().decode(String.self, from: Data(text.bytes)), value)
        }
    }
}

final class StreamingTests: XCTestCase {
    func testSpillBufferGivesBackEveryByteInOrder() throws {
        let dir = NSTemporaryDirectory()
        let spill = SpillBuffer(directory: dir, memoryLimit: 1000)
        var expected: [UInt8] = []
        for k in 0..<500 {
            let piece = (0..<(k % 37)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ k) }
            expected += piece
            try spill.append(piece)
        }
        XCTAssertEqual(spill.byteCount, expected.count)
        var out: [UInt8] = []
        try spill.replay { out += $0 }
        XCTAssertEqual(out, expected)
        // Nothing named is left in the folder.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertFalse(names.contains { $0.hasPrefix(".imgconv-spill") })
    }

    func testManifestWrittenFromEntriesEqualsTheEncodedOne() throws {
        // Most entries plain (written in one piece), some with strings to escape or optional members.
        let files = (0..<40).map { i in
            Manifest.FileRecord(path: i % 4 == 0 ? "c\(i % 3)/f \"\(i)\".png" : "c\(i % 3)/f\(i).png",
                                label: i % 3 == 0 ? i * 104_729 : i % 3, format: i == 11 ? "p\tng" : "png",
                                sha256: String(repeating: "a", count: 64),
                                page: i == 5 ? 2 : nil, orientation: i == 7 ? 6 : nil, warning: i == 9 ? "w\n" : nil)
        }
        var m = Manifest(tool: .init(name: "imgconv", version: "0"), source: .init(root: "r", kind: "folders"),
                         output: .init(format: "npz", name: "o.npz"),
                         options: .init(size: nil, color: "auto", compress: false, skipBad: false, resizeFilter: "bilinear",
                                        dtype: "auto", exifOrientation: true, allowTruncatedJpeg: false, tiffPages: "first", maxPixels: 1),
                         classes: [.init(index: 0, name: "a", count: 14)], tensors: [], files: files, skipped: [], warnings: [],
                         summary: .init(images: 40, skipped: 0, skippedByReason: [:], rotated: 1, ignoredTiffPages: 0))
        m.options.frames = "all"
        m.summary.ignoredFrames = 3
        m.summary.formats = ["png": 38, "gif": 2]
        let whole = try m.encoded()
        for limit in [1, 300, 1 << 20] {
            let spill = SpillBuffer(directory: NSTemporaryDirectory(), memoryLimit: limit)
            for (i, f) in files.enumerated() { try spill.append(Manifest.fileEntry(f, first: i == 0)) }
            let appended = SpillBuffer(directory: NSTemporaryDirectory(), memoryLimit: limit)
            for (i, f) in files.enumerated() { try appended.append { Manifest.appendFileEntry(f, first: i == 0, to: &$0) } }
            m.files = []
            var streamed: [UInt8] = [], streamedFromAppends: [UInt8] = []
            try m.write(fileEntries: spill) { streamed += $0 }
            try m.write(fileEntries: appended) { streamedFromAppends += $0 }
            XCTAssertEqual(streamed, whole)
            XCTAssertEqual(streamedFromAppends, whole)
            m.files = files
        }
        XCTAssertEqual(try Manifest.decode(whole, path: "m").files, files)
        // No files: an empty array either way.
        m.files = []
        var empty: [UInt8] = []
        try m.write(fileEntries: SpillBuffer(directory: NSTemporaryDirectory())) { empty += $0 }
        XCTAssertEqual(empty, try m.encoded())
    }

    func testFileListGivesBackWhatWasAppended() {
        var list = FileList(base: "/data/root/")
        list.append(relativePath: "cat/a.png", label: 0)
        list.append(relativePath: "dög/ß/b.jpg", label: 1, split: "val")
        list.append(relativePath: "/abs/c.tif", label: 2, split: "train")
        list.append(relativePath: "cat/d.png", label: 0, split: "val")
        XCTAssertEqual(list.count, 4)
        XCTAssertEqual(list[0], SourceFile(relativePath: "cat/a.png", path: "/data/root/cat/a.png", label: 0))
        XCTAssertEqual(list[1].relativePath, "dög/ß/b.jpg")
        XCTAssertEqual(list[1].split, "val")
        XCTAssertEqual(list[2].path, "/abs/c.tif")
        XCTAssertEqual(list[2].split, "train")
        XCTAssertEqual(list[3].split, "val")
        XCTAssertNil(list[0].split)
        XCTAssertTrue(list.hasSplits)
        XCTAssertEqual(list.map(\.label), [0, 1, 2, 0])
    }

    /// An output onto an image of the scan is refused whichever folder spelling names it; an
    /// output of the same name elsewhere, or of a name that differs only in its Unicode form (a
    /// different file on Linux), is not.
    func testOutputsAmongScannedImagesAreFoundByName() throws {
        let root = NSTemporaryDirectory() + "imgconv-among-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/cat", withIntermediateDirectories: true)
        let nfc = "caf\u{E9}.png", nfd = "cafe\u{301}.png"
        for name in ["000.png", nfc] { XCTAssertTrue(FileManager.default.createFile(atPath: root + "/cat/" + name, contents: Data([1]))) }
        var list = FileList(base: root + "/")
        for name in ["000.png", nfc] { list.append(relativePath: "cat/" + name, label: 0) }
        XCTAssertTrue(list.hasName(in: [Array("000.png".utf8)], at: 0))
        XCTAssertFalse(list.hasName(in: [Array("000.png".utf8)], at: 1))
        XCTAssertFalse(list.hasName(in: [Array(nfd.utf8)], at: 1))
        XCTAssertThrowsError(try refuseOutputsAmongInputs([root + "/cat/../cat/000.png"], images: list)) { error in
            XCTAssertTrue("\(error)".contains("000.png"), "\(error)")
        }
        XCTAssertThrowsError(try refuseOutputsAmongInputs([root + "/./cat/" + nfc], images: list))
        XCTAssertNoThrow(try refuseOutputsAmongInputs([root + "/000.png", root + "/cat/" + nfd], images: list))
    }
}

final class SplitPlanTests: XCTestCase {
    func testParseAndCounts() throws {
        let plan = try SplitPlan.parse("test=10,train=80,val=10", stratify: false, seed: 1)
        XCTAssertEqual(plan.parts.map(\.name), ["train", "val", "test"])
        XCTAssertEqual(plan.counts(for: 10), [8, 1, 1])
        XCTAssertEqual(plan.counts(for: 7).reduce(0, +), 7)
        XCTAssertThrowsError(try SplitPlan.parse("train=0.5,val=0.2", stratify: false, seed: 0))
        XCTAssertThrowsError(try SplitPlan.parse("train=0.5,dev=0.5", stratify: false, seed: 0))
    }

    /// A plan divides files: the images of one file (pages, frames) go to one split, and with one
    /// image a file the result is the plan's assignment of images.
    func testPartsKeepTheImagesOfAFileTogether() throws {
        let plan = try SplitPlan.parse("train=0.5,test=0.5", stratify: false, seed: 5)
        let fileOf = [0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4, 5]
        let parts = try SplitPlan.parts(count: fileOf.count, label: { _ in 0 }, file: { fileOf[$0] }, split: { _ in nil },
                                        onDisk: false, plan: plan, shuffleSeed: 9, name: { "\($0)" })
        var splitOfFile: [Int: String] = [:]
        for part in parts {
            for i in part.items {
                XCTAssertEqual(splitOfFile.updateValue(part.name, forKey: fileOf[Int(i)]) ?? part.name, part.name)
            }
        }
        XCTAssertEqual(splitOfFile.count, 6)
        XCTAssertEqual(parts.reduce(0) { $0 + $1.items.count }, fileOf.count)
        let single = try SplitPlan.parts(count: 20, label: { $0 % 3 }, file: { $0 }, split: { _ in nil }, onDisk: false,
                                         plan: plan, shuffleSeed: nil, name: { "\($0)" })
        let plain = try SplitPlan.parts(count: 20, label: { $0 % 3 }, split: { _ in nil }, onDisk: false,
                                        plan: plan, shuffleSeed: nil, name: { "\($0)" })
        XCTAssertEqual(single, plain)
    }

    func testStratifiedAssignmentKeepsProportionsAndIsSeeded() throws {
        let labels = (0..<10).flatMap { c in [Int](repeating: c, count: 10 + c) }
        let plan = try SplitPlan.parse("train=0.8,val=0.1,test=0.1", stratify: true, seed: 42)
        let parts = plan.assign(labels: labels)
        for c in 0..<10 {
            let mine = labels.indices.filter { labels[$0] == c }
            let n = mine.count
            for (p, expected) in plan.counts(for: n).enumerated() {
                XCTAssertEqual(mine.filter { parts[$0] == p }.count, expected)
            }
        }
        XCTAssertEqual(plan.assign(labels: labels), parts)
        var other = plan
        other.seed = 43
        XCTAssertNotEqual(other.assign(labels: labels), parts)
    }
}
