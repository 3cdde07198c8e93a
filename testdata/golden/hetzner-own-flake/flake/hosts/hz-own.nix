# What hz-own is for: a web server for the site's private content.
{ pkgs, site, ... }:
{
  environment.systemPackages = [ pkgs.htop ];
  services.nginx = {
    enable = true;
    virtualHosts."hz-own.example.org".root = "${site}/public";
  };
  networking.firewall.allowedTCPPorts = [ 80 ];
}
