# The people who run web-demo: an admin who logs in with a key and uses
# sudo through the wheel group. Root's own keys come from nixplan.
{ ... }:
{
  users.users.admin = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
    openssh.authorizedKeys.keys = [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeVFQr7aj20GWUgd2JVHzu4yywDf+VA4xTtVkmOS+Rt operator@laptop"
    ];
  };
  security.sudo.wheelNeedsPassword = false;
}
