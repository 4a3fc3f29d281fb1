"""Decides access cases with Llama Stack's own is_action_allowed: the oracle of the differential test.

Reads one JSON document on stdin: {"policies": [[rule, ...], ...], "cases": [[policy index, action, resource, user], ...]},
where a resource is {"type", "identifier", "owner": user or null} and a user {"principal", "attributes"} or null.
Writes {"accepted": [bool per policy], "errors": [...], "decisions": [bool per case]} on stdout.
"""
import json
import sys

from llama_stack.core.access_control.access_control import is_action_allowed
from llama_stack.core.access_control.datatypes import AccessRule, Action
from llama_stack.core.datatypes import User


class Resource:
    def __init__(self, type, identifier, owner):
        self.type = type
        self.identifier = identifier
        self.owner = owner


def user_of(u):
    return None if u is None else User(principal=u["principal"], attributes=u["attributes"])


def main():
    doc = json.load(sys.stdin)
    out = sys.stdout
    # Llama Stack prints and logs while it decides; only the answer goes to stdout.
    sys.stdout = sys.stderr
    policies, accepted, errors = [], [], []
    for raw in doc["policies"]:
        try:
            policies.append([AccessRule(**rule) for rule in raw])
            accepted.append(True)
            errors.append(None)
        except Exception as e:  # noqa: BLE001 - any validation failure is a refusal
            policies.append(None)
            accepted.append(False)
            errors.append(str(e).splitlines()[0])
    decisions = []
    for index, action, resource, user in doc["cases"]:
        policy = policies[index]
        if policy is None:
            decisions.append(None)
            continue
        r = Resource(resource["type"], resource["identifier"], user_of(resource["owner"]))
        decisions.append(bool(is_action_allowed(policy, Action(action), r, user_of(user))))
    json.dump({"accepted": accepted, "errors": errors, "decisions": decisions}, out)


if __name__ == "__main__":
    main()
