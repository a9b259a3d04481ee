/// Turns audit events into FHIR R4 `AuditEvent` resources following IHE Basic Audit Log Patterns (BALP).
///
/// Each resource names the acting agent (with its network address), the entity acted on, the outcome
/// and the purpose of use; break-glass access is marked with the `BTG` code. The log index and checkpoint
/// origin travel as entity details, so an ingesting SIEM can ask Caduceus for an inclusion proof.
public enum FHIRAuditExport {
    static let restfulInteraction = "http://hl7.org/fhir/restful-interaction"
    static let balpProfiles = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"

    /// The FHIR `AuditEvent` resource for `event`, which is entry `index` of the log `origin`.
    public static func resource(for event: AuditEvent, index: UInt64, origin: String) -> JSONValue {
        let (interaction, actionCode, profile) = classify(event.action)
        var purposes: [JSONValue] = []
        if let purpose = event.purposeOfUse {
            purposes.append(concept("http://terminology.hl7.org/CodeSystem/v3-ActReason", purpose))
        }
        if event.breakGlass {
            purposes.append(concept("http://terminology.hl7.org/CodeSystem/v3-ActCode", "BTG", "break the glass"))
        }
        var agent: [String: JSONValue] = [
            "type": concept(
                "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "humanuser", "human user"),
            "who": .object(["identifier": identifier("urn:caduceus:\(event.actor.type)", event.actor.id)]),
            "requestor": .bool(true),
        ]
        if event.actor.type != "user" {
            agent["type"] = concept(
                "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "dataprocessor", "data processor")
        }
        if let session = event.session { agent["altId"] = .string(session) }
        if let address = event.sourceAddress {
            agent["network"] = .object(["address": .string(address), "type": .string("2")])
        }
        var entities: [JSONValue] = [
            .object([
                "what": .object(["identifier": identifier("urn:caduceus:\(event.resource.type)", event.resource.id)]),
                "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
                "detail": .array([
                    .object(["type": .string("caduceus-log-index"), "valueString": .string(String(index))]),
                    .object(["type": .string("caduceus-log-origin"), "valueString": .string(origin)]),
                ]),
            ])
        ]
        if let tenant = event.tenant {
            entities.append(
                .object([
                    "what": .object(["identifier": identifier("urn:caduceus:tenant", tenant)]),
                    "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "3", "Organization"),
                ]))
        }
        if let requestId = event.requestId {
            entities.append(
                .object([
                    "what": .object(["identifier": .object(["value": .string(requestId)])]),
                    "type": coding(
                        "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId",
                        "X-Request-Id"),
                ]))
        }
        if let grant = event.breakGlassGrant {
            entities.append(
                .object([
                    "what": .object(["identifier": identifier("urn:caduceus:break-glass", grant)]),
                    "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "4", "Other"),
                ]))
        }
        if let payload = event.payload {
            entities.append(
                .object([
                    "what": .object(["identifier": identifier("urn:caduceus:audit-payload", payload)]),
                    "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "4", "Other"),
                ]))
        }
        var resource: [String: JSONValue] = [
            "resourceType": .string("AuditEvent"),
            "id": .string(event.id),
            "type": coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "Restful Operation"),
            "subtype": .array(
                (interaction.map { [coding(restfulInteraction, $0, nil)] } ?? [])
                    + [coding("urn:caduceus:audit-action", event.action, nil)]),
            "action": .string(actionCode),
            "recorded": .string(event.time),
            "outcome": .string(event.outcome == .success ? "0" : event.outcome == .denied ? "4" : "8"),
            "agent": .array([.object(agent)]),
            "source": .object([
                "site": .string(origin),
                "observer": .object(["display": .string("Caduceus")]),
                "type": .array([
                    coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")
                ]),
            ]),
            "entity": .array(entities),
        ]
        if event.outcome != .success { resource["outcomeDesc"] = .string(event.outcome.rawValue) }
        if !purposes.isEmpty { resource["purposeOfEvent"] = .array(purposes) }
        if let profile { resource["meta"] = .object(["profile": .array([.string(balpProfiles + profile)])]) }
        return .object(resource)
    }

    /// The bundle entry wrapping a resource.
    public static func bundleEntry(_ resource: JSONValue, id: String) -> JSONValue {
        let isUUID = id.utf8.count == 36 && id.utf8.allSatisfy { AuditEventValidation.isHexDigit($0) || $0 == 45 }
        return .object([
            "fullUrl": .string(isUUID ? "urn:uuid:\(id.lowercased())" : "urn:caduceus:audit-event:\(id)"),
            "resource": resource,
        ])
    }

    /// Maps an action's verb to a RESTful interaction, a FHIR action code and a BALP profile.
    static func classify(_ action: String) -> (interaction: String?, action: String, profile: String?) {
        let verb = action.split(separator: ".").last.map(String.init) ?? action
        switch verb {
        case "create", "upload", "submit", "register", "append", "enrol", "grant":
            return ("create", "C", "IHE.BasicAudit.Create")
        case "read", "download", "show", "get", "view", "unwrap":
            return ("read", "R", "IHE.BasicAudit.Read")
        case "update", "rotate", "assign", "approve", "modify":
            return ("update", "U", "IHE.BasicAudit.Update")
        case "delete", "shred", "revoke", "cancel", "remove":
            return ("delete", "D", "IHE.BasicAudit.Delete")
        case "list", "search", "query", "report", "export":
            return ("search-type", "E", "IHE.BasicAudit.Query")
        default:
            return (nil, "E", nil)
        }
    }

    static func coding(_ system: String, _ code: String, _ display: String?) -> JSONValue {
        var fields: [String: JSONValue] = ["system": .string(system), "code": .string(code)]
        if let display { fields["display"] = .string(display) }
        return .object(fields)
    }

    static func concept(_ system: String, _ code: String, _ display: String? = nil) -> JSONValue {
        .object(["coding": .array([coding(system, code, display)])])
    }

    static func identifier(_ system: String, _ value: String) -> JSONValue {
        .object(["system": .string(system), "value": .string(value)])
    }
}
