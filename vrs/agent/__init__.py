"""The VRS agent beside a real Open vSwitch: keeps the integration bridge right over OVSDB (the `ovs`
IDL), plugs containers (namespace + veth, identity in the Interface's external_ids) and reports the
datapath, tunnel and container ports to the VSC on the agent channel (docs/interfaces.md section 2)."""
