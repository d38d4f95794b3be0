name: "t"
input { name: "x" shape { dim: -1 } }
output { name: "x" }
