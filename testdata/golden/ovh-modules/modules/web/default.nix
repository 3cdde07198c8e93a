# A web server: nginx, set up in ./nginx.nix, with the firewall open for it.
{ ... }:
{
  imports = [ ./nginx.nix ];
  networking.firewall.allowedTCPPorts = [ 80 ];
}
