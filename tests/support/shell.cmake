# skiff_test_shell: RunShell/Shell (popen) and SourceDir() for tests.
add_library(skiff_test_shell STATIC ${CMAKE_CURRENT_LIST_DIR}/shell.cc)
target_link_libraries(skiff_test_shell PUBLIC GTest::gtest)
target_compile_definitions(skiff_test_shell PRIVATE
                           SKIFF_DEFAULT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
