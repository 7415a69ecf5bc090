import Foundation
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// What `verify` checked.
public struct VerificationReport: Sendable {
    public var checks: [String] = []
}

/// Re-reads an output through the project's own readers and checks it against its manifest:
/// container structure and CRCs, NPY headers, shapes and dtypes, label range, class names and
/// tensor checksums; with `against`, re-decodes every source image and compares pixels exactly.
public struct Verifier {
    public var jobs: Int

    public init(jobs: Int = ConversionOptions.defaultJobs) { self.jobs = jobs }

    /// The manifest that belongs to an output path.
    public static func manifestPath(for path: String) -> String {
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { return path + "/manifest.json" }
        return path + ".manifest.json"
    }

    /// - Throws: `ImgConvError` `.verificationFailed` (or `.corruptInput`) naming the file, the
    ///   tensor or member, and what differs.
    public func verify(path: String, against root: String? = nil) throws -> VerificationReport {
        var report = VerificationReport()
        let container = try openContainer(path)
        let manifestFile = Self.manifestPath(for: path)
        let manifest = try Manifest.decode(try readFile(manifestFile), path: manifestFile)
        report.checks.append("manifest '\(manifestFile)' parsed (\(manifest.tensors.count) tensors, \(manifest.files.count) files)")
        func fail(_ name: String, _ why: String) -> ImgConvError {
            ImgConvError(.verificationFailed, path: path, "\(container.storageName(name)): \(why)")
        }

        let classCount = manifest.classes.count
        var shapes: [String: [Int]] = [:]
        for record in manifest.tensors {
            let (header, stream) = try container.open(record.name)
            let dtype = DType(npyDescr: header.descr)?.rawValue ?? header.descr
            guard dtype == record.dtype else { throw fail(record.name, "dtype is \(dtype), manifest says \(record.dtype)") }
            guard header.shape == record.shape else { throw fail(record.name, "shape is \(header.shape), manifest says \(record.shape)") }
            shapes[record.name] = header.shape
            var hash = SHA256Stream()
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var labelError: String?
            var carry: [UInt8] = []
            var classNameBytes: [UInt8] = []
            let isLabels = record.name.hasSuffix("Ys")
            let isClassNames = record.name == "classNames"
            do {
                while true {
                    let n = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
                    if n == 0 { break }
                    buffer.withUnsafeBytes { raw in
                        let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                        hash.update(chunk)
                        if isLabels && header.descr == "<i8" && labelError == nil {
                            carry.append(contentsOf: chunk)
                            let whole = carry.count / 8 * 8
                            for k in stride(from: 0, to: whole, by: 8) {
                                var v: Int64 = 0
                                for b in 0..<8 { v |= Int64(carry[k + b]) << (8 * Int64(b)) }
                                if v < 0 || v >= classCount { labelError = "label \(v) is outside [0, \(classCount))"; break }
                            }
                            carry.removeFirst(whole)
                        }
                        if isClassNames { classNameBytes.append(contentsOf: chunk) }
                    }
                }
            } catch let e as ImgConvError {
                throw e.path == nil ? ImgConvError(e.code, path: path, "\(container.storageName(record.name)): \(e.message)") : e
            }
            if let labelError { throw fail(record.name, labelError) }
            let digest = hash.finish()
            guard digest == record.sha256 else {
                throw fail(record.name, "SHA-256 of the data is \(digest), manifest says \(record.sha256)")
            }
            if isClassNames {
                let names = decodeUnicodeArray(classNameBytes, descr: header.descr, count: header.shape.first ?? 0)
                guard names == manifest.classes.map(\.name) else {
                    throw fail(record.name, "class names \(names) differ from the manifest's")
                }
            }
            report.checks.append("\(container.storageName(record.name)): header, \(dtype) \(header.shape), data and SHA-256 match")
        }
        if let x = shapes["trainXs"], let y = shapes["trainYs"] {
            guard x.first == y.first else { throw fail("trainYs", "has \(y.first ?? 0) labels for \(x.first ?? 0) images") }
            report.checks.append("trainXs and trainYs agree on N = \(x.first ?? 0)")
        }
        guard shapes["classNames"]?.first == classCount else {
            throw fail("classNames", "holds \(shapes["classNames"]?.first ?? 0) names, manifest lists \(classCount) classes")
        }
        report.checks.append("labels lie in [0, \(classCount)); \(classCount) class names match the manifest")
        if let root {
            try compareSources(container: container, manifest: manifest, root: root, path: path)
            report.checks.append("every image equals a fresh decode of its source under '\(root)'")
        }
        return report
    }

    private func compareSources(container: TensorContainer, manifest: Manifest, root: String, path: String) throws {
        guard let record = manifest.tensors.first(where: { $0.name == "trainXs" }), record.shape.count == 4,
              let dtype = DType(rawValue: record.dtype), SampleDepth(dtype: dtype) != nil else {
            throw ImgConvError(.verificationFailed, path: path, "no uint8/uint16/float32 trainXs tensor to compare")
        }
        let plan = ImagePlan(width: record.shape[2], height: record.shape[1], channels: record.shape[3],
                             depth: SampleDepth(dtype: dtype) ?? .eight)
        let (_, stream) = try container.open("trainXs")
        var decodeOptions = DecodeOptions()
        decodeOptions.exifOrientation = manifest.options.exifOrientation
        decodeOptions.allowTruncatedJPEG = manifest.options.allowTruncatedJpeg
        decodeOptions.limits = DecodeLimits(maxPixels: manifest.options.maxPixels)
        let decoders = Decoders(options: decodeOptions)
        let files = manifest.files
        let resize = manifest.options.size != nil
        try runOrderedPipeline(
            count: files.count, jobs: jobs, window: max(8, jobs * 4),
            work: { i -> Converter.Decoded in
                let f = files[i]
                guard let format = ImageFormat(rawValue: f.format) else {
                    throw ImgConvError(.verificationFailed, path: f.path, "unknown format '\(f.format)' in the manifest")
                }
                let source = SourceFile(relativePath: f.path, path: root + "/" + f.path, label: f.label)
                return try Converter.decodeAndConform(source, format: format, header: nil, decoders: decoders,
                                                      plan: plan, resize: resize, page: f.page ?? 0)
            },
            consume: { i, result in
                let decoded = try result.get()
                let stored = try stream.read(count: plan.bytesPerImage)
                guard stored == decoded.pixels else {
                    let changed = decoded.sha256 != files[i].sha256 ? " (the source file changed since the conversion)" : ""
                    throw ImgConvError(.verificationFailed, path: path,
                                       "trainXs image \(i) differs from a fresh decode of '\(files[i].path)'\(changed)")
                }
            })
    }
}
