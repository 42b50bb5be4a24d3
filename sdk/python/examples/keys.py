"""Creates a project and an API key with an admin key (STARFIRE_API_KEY=sf-admin-...), uses the
new key, lists the project's keys, then revokes the new one."""

from starfire import Starfire

admin = Starfire()
project = admin.projects.create(name="quickstart")
key = admin.projects.api_keys.create(project.id, name="my first key")
print("created", key.id, key.redacted_value)

client = Starfire(api_key=key.value, base_url=admin.base_url)
print("models:", [m.id for m in client.models.list()])

for k in admin.projects.api_keys.list(project.id):  # walks every page
    print("key", k.id, k.name, k.redacted_value)

admin.projects.api_keys.delete(project.id, key.id)
print("revoked", key.id)
