// A real C++ program on LLVM 19's static libraries (tests/llvm_static.rs): 42 archives,
// static constructors, thread-local variables and exceptions. It parses LLVM IR, verifies it,
// runs the O2 pipeline and prints the result, which must match a native link's.
#include <llvm/AsmParser/Parser.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Support/Error.h>
#include <stdexcept>
#include <cstdio>

static const char *IR = R"(
define i32 @square_sum(i32 %n) {
entry:
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %next, %loop ]
  %acc = phi i32 [ 0, %entry ], [ %sum, %loop ]
  %sq = mul i32 %i, %i
  %sum = add i32 %acc, %sq
  %next = add i32 %i, 1
  %done = icmp eq i32 %next, %n
  br i1 %done, label %exit, label %loop
exit:
  ret i32 %sum
}
define i32 @unused(i32 %x) {
  %y = add i32 %x, 0
  ret i32 %y
}
)";

int main() {
  llvm::LLVMContext context;
  llvm::SMDiagnostic diagnostic;
  std::unique_ptr<llvm::Module> module = llvm::parseAssemblyString(IR, diagnostic, context);
  if (!module) { diagnostic.print("opt", llvm::errs()); return 1; }
  if (llvm::verifyModule(*module, &llvm::errs())) return 2;
  llvm::PassBuilder builder;
  llvm::LoopAnalysisManager lam; llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam; llvm::ModuleAnalysisManager mam;
  builder.registerModuleAnalyses(mam); builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam); builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager passes = builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O2);
  passes.run(*module, mam);
  module->print(llvm::outs(), nullptr);
  // An exception unwinding through JIT-linked frames (built with -fexceptions, unlike LLVM),
  // and an llvm::Error.
  try { throw std::runtime_error("thrown after the pipeline"); }
  catch (const std::exception &e) { std::printf("caught: %s\n", e.what()); }
  llvm::Error error = llvm::make_error<llvm::StringError>("an llvm::Error", llvm::inconvertibleErrorCode());
  llvm::outs() << "error: " << llvm::toString(std::move(error)) << "\n";
  return 0;
}
