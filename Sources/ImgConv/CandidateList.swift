import ImgConvCodecs
import ImgConvCore

/// The images the header pass found, 24 bytes each (which file, which page, the header), over the
/// scan's compact file list: a dataset of millions of files is planned, split and shuffled
/// without a heap object per file. Each `Candidate` is made when it is asked for.
struct CandidateList: RandomAccessCollection {
    private struct Probed {
        var file: UInt32
        var page: UInt32
        var width: UInt32
        var height: UInt32
        var pages: UInt32
        var channels: UInt8
        var depth: UInt8
        var orientation: UInt8
        var format: UInt8
    }

    let files: FileList
    private var probed = PagedArray<Probed>()
    private static let formats = ImageFormat.allCases
    private static let depths = SampleDepth.allCases

    init(files: FileList) { self.files = files }

    var startIndex: Int { 0 }
    var endIndex: Int { probed.count }

    subscript(i: Int) -> Candidate {
        let p = probed[i]
        let header = ImageHeader(width: Int(p.width), height: Int(p.height), channels: Int(p.channels),
                                 depth: Self.depths[Int(p.depth)], orientation: Int(p.orientation), pages: Int(p.pages))
        return Candidate(file: files[Int(p.file)], header: header, format: Self.formats[Int(p.format)], page: Int(p.page))
    }

    /// The label of candidate `i`, without making its paths.
    func label(at i: Int) -> Int { files.label(at: Int(probed[i].file)) }

    /// The index of candidate `i`'s file in `files`.
    func fileIndex(at i: Int) -> Int { Int(probed[i].file) }

    /// Adds an image of file `fileIndex` of `files`.
    mutating func append(fileIndex: Int, _ c: Candidate) {
        let h = c.header
        probed.append(Probed(file: UInt32(fileIndex), page: UInt32(c.page), width: UInt32(h.width), height: UInt32(h.height),
                             pages: UInt32(clamping: h.pages), channels: UInt8(h.channels),
                             depth: UInt8(Self.depths.firstIndex(of: h.depth)!), orientation: UInt8(h.orientation),
                             format: UInt8(Self.formats.firstIndex(of: c.format)!)))
    }
}
