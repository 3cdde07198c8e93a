# nginx serves the static site of ./site, which travels with this folder.
{ ... }:
{
  services.nginx = {
    enable = true;
    virtualHosts."web-demo.example.org".root = ./site;
  };
}
