{
  description = "The NixOS system of hz-own";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";
  # The site's private configuration, fetched over SSH with the operator's key.
  inputs.site = {
    url = "git+ssh://git@github.com/example-org/site-config";
    flake = false;
  };

  outputs = { self, nixpkgs, site }: {
    nixosConfigurations.hz-own = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      specialArgs = { inherit site; };
      modules = [
        ./nixplan/hz-own/configuration.nix # nixplan's: boot loader, storage, network, SSH, host id
        ./hosts/hz-own.nix # yours
      ];
    };
  };
}
