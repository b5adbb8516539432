public import CohortCore
import Foundation
import Yams

/// The access-control policy file (YAML), parsed into an ``AccessPolicy``
/// (`docs/access-control.md`):
///
/// ```yaml
/// default: deny                  # allow | deny: when no rule matches (required)
/// roles:                         # principal → roles; roles under "*" belong to everyone
///   alice: [admin]
///   "*": [member]
/// closedGroups: ["ops-*"]        # only members may send to these
/// rules:                         # deny wins over allow, wherever it stands
///   - allow: [join, leave, send] # or "*": every operation
///     roles: [member]
///     groups: ["chat-*", news]
///   - deny: [send]
///     principals: [anonymous]
///     groups: [news]
/// ```
public enum AccessPolicyFile {
    /// Parses the text of a policy file; the error names the rule or key at fault.
    public static func parse(yaml: String) throws(AccessPolicyError) -> AccessPolicy {
        let file: FileForm
        do {
            file = try YAMLDecoder().decode(FileForm.self, from: yaml)
        } catch let error as AccessPolicyError {
            throw error
        } catch {
            throw AccessPolicyError("cannot parse the policy: \(error)")
        }
        guard let stance = AccessPolicy.Effect(rawValue: file.default) else {
            throw AccessPolicyError("default must be allow or deny, not \(file.default.debugDescription)")
        }
        let closed = try (file.closedGroups ?? []).map { text throws(AccessPolicyError) in try GroupPattern(text) }
        var rules: [AccessPolicy.Rule] = []
        for (index, entry) in (file.rules ?? []).enumerated() {
            do {
                rules.append(try entry.rule())
            } catch {
                throw AccessPolicyError("rule \(index + 1): \(error.reason)")
            }
        }
        return AccessPolicy(defaultEffect: stance, roles: (file.roles ?? [:]).mapValues { Set($0) }, closedGroups: closed, rules: rules)
    }

    /// Reads and parses a policy file.
    public static func load(path: String) throws(AccessPolicyError) -> AccessPolicy {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw AccessPolicyError("cannot read policy file \(path): \(error.localizedDescription)")
        }
        do {
            return try parse(yaml: text)
        } catch {
            throw AccessPolicyError("\(path): \(error.reason)")
        }
    }

    private struct FileForm: Decodable {
        var `default`: String
        var roles: [String: [String]]?
        var closedGroups: [String]?
        var rules: [RuleForm]?
    }

    private struct RuleForm: Decodable {
        var allow: [String]?
        var deny: [String]?
        var principals: [String]?
        var roles: [String]?
        var groups: [String]?

        func rule() throws(AccessPolicyError) -> AccessPolicy.Rule {
            let effect: AccessPolicy.Effect
            let names: [String]
            switch (allow, deny) {
            case (let allow?, nil): (effect, names) = (.allow, allow)
            case (nil, let deny?): (effect, names) = (.deny, deny)
            default: throw AccessPolicyError("a rule has exactly one of allow: or deny:, listing operations")
            }
            var operations: Set<AccessOperation> = []
            for name in names {
                if name == "*" {
                    operations.formUnion(AccessOperation.allCases)
                } else if let operation = AccessOperation(rawValue: name) {
                    operations.insert(operation)
                } else {
                    throw AccessPolicyError("unknown operation \(name.debugDescription); one of \(AccessOperation.allCases.map(\.rawValue).joined(separator: ", ")) or *")
                }
            }
            let patterns = try (groups ?? []).map { text throws(AccessPolicyError) in try GroupPattern(text) }
            return try AccessPolicy.Rule(
                effect, operations, principals: Set(principals ?? []), roles: Set(roles ?? []), groups: patterns)
        }
    }
}
