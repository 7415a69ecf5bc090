import ImgConvCore
import ImgConvFormats

extension Verifier {
    /// A part (`to-* --plan --shard K/N`) holds exactly its range of every split of the plan
    /// beside it (`plan.json` in the part's folder, of the hash its manifest records): each
    /// image of the range, in order, is either the next file its manifest lists (same path,
    /// label and page) or the next file it says it skipped.
    func checkAgainstPlan(_ manifest: Manifest, _ shard: Manifest.Shard, path: String, report: inout VerificationReport) throws {
        let planPath = ShardMerger.planPath(parentFolder(path))
        func fail(_ why: String) -> ImgConvError { ImgConvError(.verificationFailed, path: path, why) }
        let plan: ShardPlan
        do { plan = try knownPlan ?? ShardPlan.load(planPath) } catch let e as ImgConvError {
            throw fail("is shard \(shard.index) of \(shard.count) of a plan, and the plan beside it cannot be read: \(e.message)")
        }
        guard plan.hash == shard.planHash else {
            throw fail("is a part of plan \(shard.planHash.prefix(12)), the plan beside it is \(plan.hash.prefix(12))")
        }
        guard shard.count == plan.shards, shard.index < plan.shards else {
            throw fail("is shard \(shard.index) of \(shard.count), the plan has \(plan.shards) shards")
        }
        var fileAt = 0, skipAt = 0
        for split in plan.splits {
            let range = split.ranges[shard.index]
            guard shard.ranges[split.name] == range else {
                throw fail("records the range \(shard.ranges[split.name] ?? []) of split '\(split.name)', the plan gives shard \(shard.index) \(range)")
            }
            let skipEnd = skipAt + (shard.skippedBySplit[split.name] ?? 0)
            for position in range[0]..<range[1] {
                let item = split.items[position]
                let file = plan.files[item.file]
                if fileAt < manifest.files.count {
                    let f = manifest.files[fileAt]
                    if f.path == file.path && f.label == file.label && (f.page.map { $0 == item.page } ?? true) {
                        fileAt += 1
                        continue
                    }
                }
                if skipAt < skipEnd && skipAt < manifest.skipped.count && manifest.skipped[skipAt].path == file.path {
                    skipAt += 1
                    continue
                }
                throw fail("position \(position) of split '\(split.name)' is '\(file.path)' in the plan; the part lists neither it nor its skip there")
            }
            guard skipAt == skipEnd else { throw fail("lists skipped files of split '\(split.name)' outside its range") }
        }
        guard fileAt == manifest.files.count, skipAt == manifest.skipped.count else {
            throw fail("lists \(manifest.files.count - fileAt) files and \(manifest.skipped.count - skipAt) skipped files beyond its ranges")
        }
        report.checks.append("shard \(shard.index) of \(shard.count): its files are its ranges of plan \(plan.hash.prefix(12)), in order")
    }
}
